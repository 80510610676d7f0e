// Menus, dialogs and copy buttons. Works without a framework; every control is keyboard usable.
"use strict";

function setupMenu(root) {
  const button = root.querySelector("[data-menu-button]");
  const list = root.querySelector("[role=menu]");
  const items = () => Array.from(list.querySelectorAll("[role=menuitem]"));
  const open = (focusIndex) => {
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    const all = items();
    if (all.length) all[(focusIndex + all.length) % all.length].focus();
  };
  const close = (returnFocus) => {
    list.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (returnFocus) button.focus();
  };
  button.addEventListener("click", () => (list.hidden ? open(0) : close(false)));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); open(0); }
    if (event.key === "ArrowUp") { event.preventDefault(); open(-1); }
  });
  list.addEventListener("keydown", (event) => {
    const all = items();
    const index = all.indexOf(document.activeElement);
    if (event.key === "Escape") { event.preventDefault(); close(true); }
    else if (event.key === "ArrowDown") { event.preventDefault(); all[(index + 1) % all.length].focus(); }
    else if (event.key === "ArrowUp") { event.preventDefault(); all[(index - 1 + all.length) % all.length].focus(); }
    else if (event.key === "Home") { event.preventDefault(); all[0].focus(); }
    else if (event.key === "End") { event.preventDefault(); all[all.length - 1].focus(); }
    else if (event.key === "Tab") { close(false); }
  });
  document.addEventListener("click", (event) => {
    if (!root.contains(event.target) && !list.hidden) close(false);
  });
}

function setupDialogs() {
  document.querySelectorAll("[data-dialog-open]").forEach((opener) => {
    const dialog = document.getElementById(opener.dataset.dialogOpen);
    if (!dialog) return;
    opener.addEventListener("click", () => {
      dialog.dispatchEvent(new Event("opening"));
      dialog.showModal();
    });
    // "close" is dispatched as a task of its own: a dialog opened again before it ran keeps focus.
    dialog.addEventListener("close", () => { if (!dialog.open) opener.focus(); });
  });
  document.querySelectorAll("[data-dialog-close]").forEach((closer) => {
    closer.addEventListener("click", () => closer.closest("dialog").close());
  });
  // A confirmation that leads to a second one: close this dialog, open the next.
  document.querySelectorAll("[data-dialog-next]").forEach((button) => {
    const next = document.getElementById(button.dataset.dialogNext);
    if (!next) return;
    button.addEventListener("click", () => {
      button.closest("dialog").close();
      next.showModal();
    });
  });
}

// A dialog whose first step (a GET form) leads to a second step in the same dialog; when the
// first step offers a choice, the second step shown is the one for the chosen value.
function setupSteppedDialogs() {
  document.querySelectorAll("dialog[data-steps]").forEach((dialog) => {
    const first = dialog.querySelector('[data-step="1"]');
    const seconds = Array.from(dialog.querySelectorAll('[data-step="2"]'));
    if (!first || !seconds.length) return;
    first.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = first.querySelector("input[type=radio]:checked");
      const second = seconds.find((step) => !step.dataset.choice || (chosen && step.dataset.choice === chosen.value)) || seconds[0];
      first.hidden = true;
      second.hidden = false;
      const field = second.querySelector("input:not([type=hidden]), select, textarea, button:not([data-dialog-close])");
      if (field) field.focus();
    });
    const toFirstStep = () => {
      first.hidden = false;
      seconds.forEach((step) => { step.hidden = true; });
      first.reset();
    };
    // Opened again before its "close" task ran, the dialog still starts at its first step.
    dialog.addEventListener("opening", toFirstStep);
    dialog.addEventListener("close", () => { if (!dialog.open) toFirstStep(); });
  });
}

function setupPrintButtons() {
  document.querySelectorAll("[data-print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });
}

function setupCopyButtons() {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = document.querySelector(button.dataset.copy);
      if (!field) return;
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
      } catch (error) {
        document.execCommand("copy");
      }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-menu]").forEach(setupMenu);
  setupDialogs();
  setupSteppedDialogs();
  setupCopyButtons();
  setupPrintButtons();
});
