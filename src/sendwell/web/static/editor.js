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

function setupSnippets() {
  const bar = document.querySelector("[data-snippet-bar]");
  if (!bar) return;
  const choice = bar.querySelector("select");
  const status = bar.querySelector("[data-snippet-status]");
  const isField = (element) =>
    element instanceof HTMLElement && element.matches("input[name=step_subject], textarea[name=step_body]");
  // The subject or body the user was last in: choosing a snippet moves the focus away.
  let target = null;
  document.addEventListener("focusin", (event) => { if (isField(event.target)) target = event.target; });
  bar.hidden = false;
  bar.querySelector("[data-insert-snippet]").addEventListener("click", () => {
    const option = choice.selectedOptions[0];
    const field = target || document.querySelector("textarea[name=step_body]");
    if (!option || !field) return;
    let text = option.dataset.text || "";
    // A subject is one line.
    if (field.tagName === "INPUT") text = text.replace(/\s*\n\s*/g, " ");
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    field.setRangeText(text, start, end, "end");
    field.focus();
    const label = document.querySelector(`label[for="${field.id}"]`);
    const group = field.closest("fieldset")?.querySelector("legend");
    if (status) status.textContent = `Inserted “${option.textContent}” in ${group ? group.textContent + " " : ""}${label ? label.textContent.toLowerCase() : "the field"}.`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  useBrowserZone();
  setupSnippets();
});
