// The chat page: ask, read the answer as it streams in (server-sent events over fetch), rate it.
// Text from answers and documents only ever reaches the page as textContent, except the
// finished answer, whose HTML the server has rendered and sanitised. Its own words come from
// gettext() (the /jsi18n/ catalogue, in the interface language).
"use strict";

(function () {
  // On a phone the conversation list starts folded, so that the conversation comes first.
  const conversations = document.getElementById("conversations");
  if (conversations && window.matchMedia("(max-width: 700px)").matches) conversations.open = false;

  const form = document.getElementById("ask-form");
  const transcript = document.getElementById("transcript");
  if (!form || !transcript) return;
  const template = document.getElementById("answer-template");
  const status = document.getElementById("ask-status");
  const button = document.getElementById("ask-button");
  const csrfToken = form.querySelector("[name=csrfmiddlewaretoken]").value;

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = form.question.value.trim();
    if (!question) return;
    ask(question, false);
  });

  form.question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  transcript.addEventListener("click", (event) => {
    const rate = event.target.closest("button.rate");
    if (rate) return sendFeedback(rate.closest(".turn"), Number(rate.dataset.rating), rate);
    if (event.target.closest("button.regenerate")) return regenerate();
  });

  transcript.addEventListener("submit", (event) => {
    const commentForm = event.target.closest("form.comment-form");
    if (!commentForm) return;
    event.preventDefault();
    const turn = commentForm.closest(".turn");
    const pressed = turn.querySelector("button.rate[aria-pressed=true]");
    sendFeedback(turn, pressed ? Number(pressed.dataset.rating) : -1, pressed);
  });

  showRegenerateOnLastAnswer();

  function ask(question, isRegeneration) {
    const body = new FormData(form);
    body.set("question", question);
    if (isRegeneration) body.set("regenerate", "on");
    if (!body.getAll("knowledge_bases").length) {
      setStatus(gettext("Choose at least one knowledge base."));
      return;
    }
    const questionTurn = document.createElement("div");
    questionTurn.className = "turn user";
    questionTurn.textContent = question;
    transcript.appendChild(questionTurn);
    const turn = template.content.firstElementChild.cloneNode(true);
    transcript.appendChild(turn);
    form.question.value = "";
    stream(body, turn);
  }

  function regenerate() {
    const questions = transcript.querySelectorAll(".turn.user");
    const last = questions[questions.length - 1];
    if (!last || button.disabled) return;
    const question = last.textContent;
    // The server forgets the last question and answer; the page does the same.
    while (last.nextSibling) last.nextSibling.remove();
    last.remove();
    ask(question, true);
  }

  async function stream(body, turn) {
    const answer = turn.querySelector(".answer");
    const started = performance.now();
    let firstToken = null;
    answer.classList.add("streaming");
    button.disabled = true;
    setStatus(gettext("Searching…"));
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: body,
        headers: { Accept: "text/event-stream", "X-CSRFToken": csrfToken },
        credentials: "same-origin",
      });
      if (!response.ok) {
        throw new Error(await errorMessage(response));
      }
      await readEvents(response, (kind, data) => {
        if (kind === "sources") {
          const found = ngettext(
            "Found %s passage; writing the answer…",
            "Found %s passages; writing the answer…",
            data.passages.length,
          );
          setStatus(interpolate(found, [data.passages.length]));
        } else if (kind === "delta") {
          if (firstToken === null) {
            firstToken = performance.now() - started;
            turn.dataset.firstTokenMs = String(Math.round(firstToken));
          }
          answer.textContent += data.text;
        } else if (kind === "done") {
          finish(turn, data);
        } else if (kind === "error") {
          throw new Error(data.message);
        }
      });
    } catch (error) {
      turn.querySelector(".error-text").textContent =
        error.message || gettext("The answer could not be completed.");
      setStatus("");
    } finally {
      answer.classList.remove("streaming");
      button.disabled = false;
      turn.dataset.totalMs = String(Math.round(performance.now() - started));
    }
  }

  async function readEvents(response, handle) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseEvent(block);
        if (event) handle(event.kind, event.data);
      }
    }
  }

  function parseEvent(block) {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) kind = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    return data.length ? { kind, data: JSON.parse(data.join("\n")) } : null;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body.error) return body.error;
    } catch (ignored) {
      // not JSON: fall through to a generic message
    }
    if (response.status === 403) {
      return gettext("Your session has expired; reload the page and log in.");
    }
    return interpolate(gettext("The question could not be asked (HTTP %s)."), [response.status]);
  }

  function finish(turn, data) {
    const answer = turn.querySelector(".answer");
    answer.classList.remove("streaming");
    answer.innerHTML = data.html; // rendered and sanitised by the server
    const mode = turn.querySelector(".mode");
    mode.textContent = mode.dataset[data.mode] || ""; // the labels come with the template
    turn.querySelector(".notice").textContent = data.notice || "";
    turn.dataset.messageId = data.message;
    turn.dataset.mode = data.mode;
    showSources(turn, data.citations || []);
    turn.querySelector(".feedback").hidden = false;
    rememberConversation(data.conversation);
    showRegenerateOnLastAnswer();
    const timings = data.timings || {};
    const ms = timings.total_ms;
    const took =
      ms >= 1000
        ? interpolate(gettext("Answered in %s s."), [(ms / 1000).toFixed(1)])
        : interpolate(gettext("Answered in %s ms."), [ms]);
    setStatus(ms ? took : "");
  }

  function showSources(turn, citations) {
    const section = turn.querySelector(".sources");
    const list = section.querySelector("ol");
    list.replaceChildren();
    for (const citation of citations) {
      const item = document.createElement("li");
      item.dataset.n = citation.n;
      const link = document.createElement("a");
      link.className = "source-link";
      link.href = citation.url;
      link.target = "_blank";
      link.rel = "noopener";
      const title = citation.page
        ? interpolate(
            gettext("%(title)s, page %(page)s"),
            { title: citation.document_title, page: citation.page },
            true,
          )
        : citation.document_title;
      link.textContent = `[${citation.n}] ${title}`;
      // The passage's Markdown as HTML that the server rendered and sanitised, like the answer.
      const text = document.createElement("div");
      text.className = "passage-text";
      if (citation.html !== undefined) text.innerHTML = citation.html;
      else text.textContent = citation.text;
      item.append(link, text);
      list.appendChild(item);
    }
    section.hidden = citations.length === 0;
  }

  function rememberConversation(id) {
    if (!id) return;
    const field = form.querySelector("[name=conversation]");
    if (field.value === String(id)) return;
    field.value = id;
    const url = form.dataset.conversationUrl.replace(/0\/$/, `${id}/`);
    history.replaceState(null, "", url);
    const list = document.getElementById("conversation-list");
    list.querySelector(".empty")?.remove();
    const item = document.createElement("li");
    item.className = "current";
    const link = document.createElement("a");
    link.href = url;
    const question = transcript.querySelector(".turn.user")?.textContent.slice(0, 80);
    link.textContent = question || gettext("New conversation");
    item.appendChild(link);
    list.prepend(item);
  }

  // Regenerating an extractive answer would quote the same sentences again: the last answer
  // offers it only when a language model wrote it, and otherwise says how to get another.
  function showRegenerateOnLastAnswer() {
    const answers = transcript.querySelectorAll(".turn.assistant");
    answers.forEach((turn, index) => {
      const last = index === answers.length - 1;
      const extractive = turn.dataset.mode === "extractive";
      turn.querySelector("button.regenerate").hidden = !last || extractive;
      const hint = turn.querySelector(".regenerate-hint");
      if (hint) hint.hidden = !last || !extractive;
    });
  }

  async function sendFeedback(turn, rating, pressedButton) {
    const messageId = turn.dataset.messageId;
    if (!messageId) return;
    const commentForm = turn.querySelector("form.comment-form");
    const body = new FormData();
    body.set("rating", rating);
    body.set("comment", commentForm.comment.value);
    const url = form.dataset.feedbackUrl.replace(/\/0\//, `/${messageId}/`);
    const feedbackStatus = turn.querySelector(".feedback-status");
    const response = await fetch(url, {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      credentials: "same-origin",
    });
    if (!response.ok) {
      feedbackStatus.textContent = await errorMessage(response);
      return;
    }
    turn.querySelectorAll("button.rate").forEach((rate) => {
      rate.setAttribute("aria-pressed", String(rate === pressedButton));
    });
    commentForm.hidden = false;
    feedbackStatus.textContent = gettext("Thanks for the feedback.");
  }

  function setStatus(text) {
    status.textContent = text;
  }

  document.querySelectorAll("form[data-confirm]").forEach((confirmForm) => {
    confirmForm.addEventListener("submit", (event) => {
      if (!window.confirm(confirmForm.dataset.confirm)) event.preventDefault();
    });
  });
})();
