// Live pages: a page that names a live source ([data-live-source]) asks it for its changing
// parts every few seconds while the tab is visible and puts them in place. No reloads: the
// cells come back rendered by the server (escaped there), matched to the page by ids.
"use strict";

(function () {
  const source = document.querySelector("[data-live-source]");
  if (!source || !window.fetch) return;
  const kind = source.dataset.liveKind;
  const EVERY = { campaign: 3000, recipient: 3000, campaigns: 5000 }[kind] || 5000;
  // A finished campaign rarely changes again (a host's bounce can reopen it): look less often.
  const FINISHED_EVERY = 30000;
  let timer = null;
  let busy = false;
  let stopped = false;
  let every = EVERY;

  function ids(selector, attribute) {
    return Array.from(document.querySelectorAll(selector))
      .map((row) => row.getAttribute(attribute))
      .join(",");
  }

  function address() {
    const url = new URL(source.dataset.liveSource, window.location.origin);
    if (kind === "campaign") {
      url.searchParams.set("ids", ids("tr[data-recipient-id]", "data-recipient-id"));
      const chart = document.querySelector('[data-live="chart"]');
      if (chart) url.searchParams.set("sent", chart.dataset.liveSent || "");
    } else if (kind === "campaigns") {
      url.searchParams.set("ids", ids("tr[data-campaign-id]", "data-campaign-id"));
    }
    return url;
  }

  // Replace a cell's markup only when it changed, so nothing flickers or loses selection.
  function put(element, html) {
    if (element && typeof html === "string" && element.innerHTML !== html) element.innerHTML = html;
  }

  function text(element, value) {
    const words = String(value);
    if (element && element.textContent !== words) element.textContent = words;
  }

  function applyCampaign(data) {
    const badge = document.querySelector('.section-head [data-live="status"]');
    if (badge) {
      text(badge, data.status_label);
      badge.className = "badge badge-" + data.status;
    }
    const reason = document.querySelector('[data-live="pause-words"]');
    if (reason) {
      const shown = reason.querySelector(".reason");
      if (!data.pause_words) reason.textContent = "";
      else if (!shown || shown.textContent !== data.pause_words) {
        reason.textContent = "· ";
        const span = document.createElement("span");
        span.className = "reason";
        span.textContent = data.pause_words;
        reason.appendChild(span);
      }
    }
    put(document.querySelector('[data-live="next-send"]'), data.next_html);
    Object.entries(data.counts || {}).forEach(([key, value]) => {
      text(document.querySelector(`[data-live-count="${key}"]`), value);
    });
    const chart = document.querySelector('[data-live="chart"]');
    if (chart && typeof data.chart_html === "string") {
      put(chart, data.chart_html);
      chart.dataset.liveSent = String(data.counts.sent);
    }
    (data.rows || []).forEach((row) => {
      const line = document.querySelector(`tr[data-recipient-id="${row.id}"]`);
      if (!line) return;
      put(line.querySelector('[data-live="status"]'), row.status_html);
      text(line.querySelector('[data-live="steps"]'), row.steps_sent);
      put(line.querySelector('[data-live="last-sent"]'), row.last_sent_html);
      put(line.querySelector('[data-live="next"]'), row.next_html);
    });
    // Buttons for actions the campaign's status no longer allows are hidden.
    document.querySelectorAll(".head-actions form[data-action]").forEach((form) => {
      form.hidden = !(data.actions || []).includes(form.dataset.action);
    });
    const edit = document.querySelector('.head-actions a[href$="/edit"]');
    if (edit) edit.hidden = !["draft", "paused"].includes(data.status);
    every = data.finished ? FINISHED_EVERY : EVERY;
  }

  function applyCampaigns(data) {
    (data.campaigns || []).forEach((campaign) => {
      const line = document.querySelector(`tr[data-campaign-id="${campaign.id}"]`);
      if (!line) return;
      put(line.querySelector('[data-live="status"]'), campaign.status_html);
      put(line.querySelector('[data-live="progress"]'), campaign.progress_html);
      text(line.querySelector('[data-live="replied"]'), campaign.replied);
      const menu = line.querySelector('[data-live="menu"]');
      // An open menu is left as it is: its items must not move under the pointer.
      if (menu && menu.hidden) put(menu, campaign.menu_html);
    });
  }

  function applyRecipient(data) {
    const badge = document.querySelector('.section-head [data-live="status"]');
    if (badge) {
      text(badge, data.label);
      badge.className = "badge badge-" + data.badge;
    }
    (data.steps || []).forEach((step) => {
      const line = document.querySelector(`tr[data-step="${step.step}"]`);
      if (!line) return;
      put(line.querySelector('[data-live="state"]'), step.state_html);
      put(line.querySelector('[data-live="when"]'), step.when_html);
    });
  }

  const APPLY = { campaign: applyCampaign, campaigns: applyCampaigns, recipient: applyRecipient };

  function schedule() {
    window.clearTimeout(timer);
    if (!stopped && !document.hidden) timer = window.setTimeout(poll, every);
  }

  async function poll() {
    if (busy || stopped || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(address(), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.includes("application/json")) {
        // Signed out (the sign-in page came back) or the campaign is gone: stop asking.
        if (response.redirected || [401, 403, 404].includes(response.status)) stopped = true;
        return;
      }
      const apply = APPLY[kind];
      if (apply) apply(await response.json());
      document.documentElement.dataset.liveUpdated = String(Date.now());
    } catch (_error) {
      // The server is unreachable for a moment: try again at the next turn.
    } finally {
      busy = false;
      schedule();
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) window.clearTimeout(timer);
    else poll();
  });
  schedule();
})();
