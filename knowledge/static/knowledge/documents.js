// The document list: progress of documents being indexed, and confirmation before deleting.
"use strict";

(function () {
  const POLL_MS = 1000;
  const BUSY = ["queued", "processing"];

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  document.querySelectorAll("#documents tr[data-document]").forEach((row) => {
    if (BUSY.includes(row.dataset.state)) poll(row);
  });

  async function poll(row) {
    try {
      const response = await fetch(row.dataset.statusUrl, {
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      const status = await response.json();
      update(row, status);
      if (BUSY.includes(status.state)) setTimeout(() => poll(row), POLL_MS);
    } catch (error) {
      setTimeout(() => poll(row), POLL_MS * 3);
    }
  }

  function update(row, status) {
    row.dataset.state = status.state;
    const cell = row.querySelector("td.state");
    cell.className = `state state-${status.state}`;
    const bar = cell.querySelector("progress");
    bar.value = status.progress;
    bar.hidden = !BUSY.includes(status.state);
    cell.querySelector(".state-label").textContent = status.state_label;
    cell.querySelector(".document-error").textContent = status.error || "";
    row.querySelector("td.pages").textContent = status.page_count ?? "–";
    row.querySelector("td.chunks").textContent = status.chunk_count;
  }
})();
