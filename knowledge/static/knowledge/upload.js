// The upload page: several files at once (drop or choose), each with a progress bar from the
// upload (XHR progress, a few files at a time) through ingestion (status.js: one request for
// all the files on the page) to indexed, or to failed: a red bar and a reason that starts
// "Failed:" whatever went wrong.
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
  const SETTLED = ["indexed", "failed", "disabled"];
  const PARALLEL_UPLOADS = 3;
  const rows = new Map(); // document id -> its rows (the same content may be dropped twice)
  const waiting = [];
  let uploading = 0;
  const tracker = window.DocumentStatus(form.dataset.statusUrl, (document_) => {
    for (const row of rows.get(String(document_.id)) || []) follow(document_, row);
  });

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
        fail(row, problem);
      } else {
        show(row, "waiting", 0, gettext("Waiting to upload…"));
        waiting.push([file, row]);
      }
    }
    sendNext();
  }

  function sendNext() {
    while (uploading < PARALLEL_UPLOADS && waiting.length) {
      uploading += 1;
      const [file, row] = waiting.shift();
      send(file, row, () => {
        uploading -= 1;
        sendNext();
      });
    }
  }

  function checkFile(file) {
    const dot = file.name.lastIndexOf(".");
    const suffix = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
    if (!accepted.includes(suffix)) {
      const names = { name: file.name, type: suffix, accepted: accepted.join(" ") };
      const refused = suffix
        ? gettext("%(name)s is a %(type)s file, which cannot be read; upload %(accepted)s files.")
        : gettext("%(name)s has no file type ending (such as .pdf), so it cannot be read; upload %(accepted)s files.");
      return interpolate(refused, names, true);
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

  // Every failure reads the same way: "Failed: " and the reason, on a full red bar.
  function fail(row, reason) {
    show(row, "failed", 100, interpolate(gettext("Failed: %s"), [reason]));
  }

  function send(file, row, done) {
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
      fail(row, interpolate(interrupted, { name: file.name }, true));
    });
    request.addEventListener("loadend", done);
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
    if (!result) return fail(row, body.error || gettext("The upload failed."));
    if (result.error) return fail(row, result.error);
    const id = String(result.document.id);
    row.dataset.document = id;
    rows.set(id, [...(rows.get(id) || []), row]);
    if (result.duplicate) row.querySelector(".status").dataset.note = result.message;
    follow(result.document, row);
  }

  function follow(status, row) {
    const note = row.querySelector(".status").dataset.note;
    if (status.state === "failed") {
      return fail(row, status.error || gettext("The document could not be indexed."));
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
    tracker.follow(status.id);
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
    return interpolate(ngettext("%s byte", "%s bytes", bytes), [bytes]);
  }
})();
