// Follows the state of documents being indexed, for the upload page and the document list: one
// request for all the documents a page follows (GET url?ids=1,2,3), never one per document, and
// less often while nothing changes (1 s, growing to 10 s; back to 1 s after a change).
"use strict";

window.DocumentStatus = function (url, onStatus) {
  const FIRST_MS = 1000;
  const LONGEST_MS = 10000;
  const MAX_IDS = 500; // what the server answers in one request
  const SETTLED = ["indexed", "failed", "disabled"];
  const followed = new Set();
  const last = new Map();
  let delay = FIRST_MS;
  let timer = null;
  let busy = false;

  function follow(id) {
    followed.add(String(id));
    delay = FIRST_MS;
    if (timer && !busy) {
      clearTimeout(timer);
      timer = null;
    }
    schedule();
  }

  function schedule() {
    if (timer || busy || followed.size === 0) return;
    timer = setTimeout(poll, delay);
  }

  async function poll() {
    timer = null;
    busy = true;
    const ids = Array.from(followed).slice(0, MAX_IDS);
    let changed = false;
    try {
      const response = await fetch(`${url}?ids=${ids.join(",")}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      const answered = new Set();
      for (const status of body.documents) {
        const id = String(status.id);
        answered.add(id);
        const seen = `${status.state} ${status.progress}`;
        if (last.get(id) !== seen) changed = true;
        last.set(id, seen);
        if (SETTLED.includes(status.state)) followed.delete(id);
        onStatus(status);
      }
      // Deleted meanwhile, or no longer readable: nothing more to follow.
      for (const id of ids) if (!answered.has(id)) followed.delete(id);
      delay = changed ? FIRST_MS : Math.min(Math.round(delay * 1.5), LONGEST_MS);
    } catch (error) {
      delay = Math.min(delay * 2, LONGEST_MS);
    }
    busy = false;
    schedule();
  }

  return { follow: follow };
};
