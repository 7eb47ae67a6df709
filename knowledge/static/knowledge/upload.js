// The upload page: several files at once (drop or choose), each with a progress bar from the
// upload (XHR progress) through ingestion (polling the document's status) to indexed or failed.
// Its words come from gettext() (the /jsi18n/ catalogue, in the interface language).
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
      const refused = gettext("%(name)s: files of type %(type)s are not accepted; use %(accepted)s.");
      const type = suffix || gettext("(none)");
      return interpolate(refused, { name: file.name, type, accepted: accepted.join(", ") }, true);
    }
    if (file.size > maxBytes) {
      const tooLarge = gettext("%(name)s is larger than the %(mb)s MB upload limit.");
      return interpolate(tooLarge, { name: file.name, mb: form.dataset.maxMb }, true);
    }
    if (file.size === 0) return interpolate(gettext("%(name)s is empty."), { name: file.name }, true);
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
      show(row, "uploading", percent, `${gettext("Uploading…")} ${percent}%`);
    });
    request.addEventListener("load", () => received(request, row));
    request.addEventListener("error", () => {
      const interrupted = gettext("%(name)s: the upload was interrupted; try again.");
      show(row, "failed", 100, interpolate(interrupted, { name: file.name }, true));
    });
    show(row, "uploading", 0, gettext("Uploading…"));
    request.send(body);
  }

  function received(request, row) {
    let body = {};
    try {
      body = JSON.parse(request.responseText);
    } catch (ignored) {
      body = { error: interpolate(gettext("The server answered HTTP %s."), [request.status]) };
    }
    const result = (body.results || [])[0];
    if (!result) return show(row, "failed", 100, body.error || gettext("The upload failed."));
    if (result.error) return show(row, "failed", 100, result.error);
    row.dataset.document = result.document.id;
    if (result.duplicate) row.querySelector(".status").dataset.note = result.message;
    follow(result.document, row);
  }

  function follow(status, row) {
    const note = row.querySelector(".status").dataset.note;
    if (status.state === "failed") {
      const reason = status.error || gettext("the document could not be indexed.");
      return show(row, "failed", 100, interpolate(gettext("Failed: %s"), [reason]));
    }
    if (SETTLED.includes(status.state)) {
      const counts = { label: status.state_label, chunks: status.chunk_count };
      const text = status.page_count
        ? interpolate(
            gettext("%(label)s: %(pages)s page(s), %(chunks)s chunk(s)."),
            { ...counts, pages: status.page_count },
            true,
          )
        : interpolate(gettext("%(label)s: %(chunks)s chunk(s)."), counts, true);
      return show(row, status.state, 100, note ? `${note} ${text}` : text);
    }
    const label = status.state === "queued" ? gettext("Queued for indexing…") : gettext("Indexing…");
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
