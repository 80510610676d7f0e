// The campaign editor: the browser's time zone for a new campaign, and snippets inserted at
// the cursor. Without JavaScript the editor still works (UTC, snippets typed by hand).
"use strict";

function useBrowserZone() {
  const select = document.querySelector("select[data-browser-zone]");
  if (!select) return;
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  if (Array.from(select.options).some((option) => option.value === zone)) select.value = zone;
}

document.addEventListener("DOMContentLoaded", () => {
  useBrowserZone();
});
