// The document list: progress of documents being indexed (status.js), one open actions menu at
// a time, and confirmation before deleting.
"use strict";

(function () {
  const BUSY = ["queued", "processing"];

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // Opening one menu closes the others; a click elsewhere closes them all.
  const menus = document.querySelectorAll("details.menu");
  menus.forEach((menu) => {
    menu.addEventListener("toggle", () => {
      if (menu.open) menus.forEach((other) => other !== menu && (other.open = false));
    });
  });
  document.addEventListener("click", (event) => {
    menus.forEach((menu) => !menu.contains(event.target) && (menu.open = false));
  });

  const source = document.getElementById("documents-status");
  if (!source) return;
  const status = window.DocumentStatus(source.dataset.url, update);
  document.querySelectorAll("#documents tr[data-document]").forEach((row) => {
    if (BUSY.includes(row.dataset.state)) status.follow(row.dataset.document);
  });

  function update(document_) {
    const row = document.querySelector(`#documents tr[data-document="${document_.id}"]`);
    if (!row) return;
    row.dataset.state = document_.state;
    const cell = row.querySelector("td.state");
    cell.className = `state state-${document_.state}`;
    const bar = cell.querySelector("progress");
    bar.value = document_.progress;
    bar.hidden = !BUSY.includes(document_.state);
    cell.querySelector(".state-label").textContent = document_.state_label;
    cell.querySelector(".document-error").textContent = document_.error || "";
    row.querySelector("td.pages").textContent = document_.page_count ?? "–";
    row.querySelector("td.chunks").textContent = document_.chunk_count;
    // Only the actions that apply to the new state.
    row.querySelectorAll("form[data-states]").forEach((form) => {
      form.hidden = !form.dataset.states.split(" ").includes(document_.state);
    });
  }
})();
