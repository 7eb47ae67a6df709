// The upload page: several files at once (drop or choose), each with a progress bar from the
// upload (XHR progress) through ingestion (polling the document's status) to indexed or failed.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  const zone = document.getElementById("drop-zone");
  const input = document.getElementById("file-input");
  const list = document.getElementById("upload-list");
  if (!form || !zone || !input || !list) return;
  const maxBytes = Number(form.dataset.maxBytes);
  const accepted = form.dataset.accept.split(",");
  const POLL_MS = 700;
  const SETTLED = ["indexed", "failed", "disabled"];

  input.addEventListener("change", () => {
    uploadAll(input.files);
    input.value = "";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    uploadAll(input.files);
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
    });
  }
  zone.addEventListener("drop", (event) => uploadAll(event.dataTransfer.files));

  function uploadAll(files) {
    for (const file of Array.from(files || [])) {
      const row = addRow(file);
      const problem = checkFile(file);
      if (problem) {
        show(row, "failed", 100, problem);
      } else {
        send(file, row);
      }
    }
  }

  function checkFile(file) {
    const dot = file.name.lastIndexOf(".");
    const suffix = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
    if (!accepted.includes(suffix)) {
      return `${file.name}: files of type ${suffix || "(none)"} are not accepted; use ${accepted.join(", ")}.`;
    }
    if (file.size > maxBytes) {
      return `${file.name} is larger than the ${form.dataset.maxMb} MB upload limit.`;
    }
    if (file.size === 0) return `${file.name} is empty.`;
    return null;
  }

  function addRow(file) {
    const row = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${file.name} (${formatSize(file.size)})`;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const statusText = document.createElement("span");
    statusText.className = "status";
    row.append(name, bar, statusText);
    list.appendChild(row);
    return row;
  }

  function show(row, state, percent, text) {
    row.dataset.state = state;
    row.querySelector("progress").value = percent;
    row.querySelector(".status").textContent = text;
  }

  function send(file, row) {
    const body = new FormData();
    body.set("csrfmiddlewaretoken", form.csrfmiddlewaretoken.value);
    body.set("password", form.password.value);
    body.set("file", file);
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((100 * event.loaded) / event.total);
      show(row, "uploading", percent, `Uploading… ${percent}%`);
    });
    request.addEventListener("load", () => received(request, row));
    request.addEventListener("error", () => {
      show(row, "failed", 100, `${file.name}: the upload was interrupted; try again.`);
    });
    show(row, "uploading", 0, "Uploading…");
    request.send(body);
  }

  function received(request, row) {
    let body = {};
    try {
      body = JSON.parse(request.responseText);
    } catch (ignored) {
      body = { error: `The server answered HTTP ${request.status}.` };
    }
    const result = (body.results || [])[0];
    if (!result) return show(row, "failed", 100, body.error || "The upload failed.");
    if (result.error) return show(row, "failed", 100, result.error);
    row.dataset.document = result.document.id;
    if (result.duplicate) row.querySelector(".status").dataset.note = result.message;
    follow(result.document, row);
  }

  function follow(status, row) {
    const note = row.querySelector(".status").dataset.note;
    if (status.state === "failed") {
      return show(row, "failed", 100, `Failed: ${status.error || "the document could not be indexed."}`);
    }
    if (SETTLED.includes(status.state)) {
      const pages = status.page_count ? `${status.page_count} page(s), ` : "";
      const text = `${status.state_label}: ${pages}${status.chunk_count} chunk(s).`;
      return show(row, status.state, 100, note ? `${note} ${text}` : text);
    }
    const label = status.state === "queued" ? "Queued for indexing…" : "Indexing…";
    show(row, status.state, status.progress, `${label} ${status.progress}%`);
    setTimeout(() => poll(status.status_url, row), POLL_MS);
  }

  async function poll(url, row) {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      follow(await response.json(), row);
    } catch (error) {
      setTimeout(() => poll(url, row), POLL_MS * 3);
    }
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  }
})();
