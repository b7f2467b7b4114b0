// aigiqa study: the subject's paired-comparison page. State lives on the server; this script
// shows the current pair, reads the buttons/keyboard (← left, → right, = tie when allowed) and
// posts one choice at a time (retrying with the same submission id, so a retry can never store
// a second choice). The response time runs from both images shown to the choice.
"use strict";
(function () {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const buttons = { left: $("choose-left"), right: $("choose-right"), tie: $("choose-tie") };
  let state = boot.state;
  let busy = false, loaded = 0, shownAt = null, submissionId = null;
  const dismissedIntro = new Set();

  function newSubmissionId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function ready() { return loaded === 2 && !busy && !state.finished; }
  function refreshControls() {
    for (const b of Object.values(buttons)) if (b) b.disabled = !ready();
  }
  function showProgress() {
    const pct = state.total ? (100 * state.done) / state.total : 100;
    $("bar-fill").style.width = pct.toFixed(1) + "%";
    const session = state.trial ? state.trial.session : state.sessions;
    $("progress-text").textContent =
      state.done + " / " + state.total + " compared · session " + session + " of " + state.sessions;
  }
  function show(section) {
    for (const id of ["intro", "trial", "finished"]) $(id).hidden = id !== section;
  }

  function render() {
    showProgress();
    if (state.finished) { show("finished"); return; }
    const t = state.trial;
    if (state.session_start && !dismissedIntro.has(t.session)) {
      $("intro-title").textContent = t.session === 1
        ? "Welcome" : "Session " + t.session + " of " + state.sessions;
      $("intro-text").textContent = t.session === 1
        ? "You will see two images side by side. Choose the one whose overall quality you "
          + "find better" + (state.allow_ties ? ", or say they are about the same." : ".")
          + (t.kind === "training" ? " The first pairs are for practice." : "")
        : "Well done: the previous session is finished. Take a break if you like, then "
          + "continue with the next session.";
      show("intro");
      $("start").focus();
      return;
    }
    show("trial");
    $("prompt-row").hidden = !t.prompt;
    $("prompt").textContent = t.prompt || "";
    $("left-prompt").textContent = t.left_prompt || "";
    $("right-prompt").textContent = t.right_prompt || "";
    $("kind-badge").hidden = t.kind !== "training";
    $("note").hidden = !t.note;
    $("note").textContent = t.note || "";
    $("status").textContent = "";
    loaded = 0;
    shownAt = null;
    submissionId = newSubmissionId();
    refreshControls();
    $("left").src = t.left_url;
    $("right").src = t.right_url;
  }

  for (const side of ["left", "right"]) {
    $(side).addEventListener("load", () => {
      loaded += 1;
      if (loaded === 2) shownAt = performance.now();
      refreshControls();
    });
    $(side).addEventListener("error", () => {
      $("status").textContent = "An image could not be loaded; reload the page.";
    });
  }
  $("start").addEventListener("click", () => {
    dismissedIntro.add(state.trial.session);
    render();
  });
  for (const [choice, b] of Object.entries(buttons)) {
    if (b) b.addEventListener("click", () => send(choice));
  }

  async function send(choice) {
    if (!ready() || (choice === "tie" && !state.allow_ties)) return;
    busy = true;
    refreshControls();
    const ms = shownAt === null ? null : Math.round(performance.now() - shownAt);
    const body = JSON.stringify({ trial_id: state.trial.id, choice, submission_id: submissionId,
                                  response_ms: ms });
    const out = await window.aigiqaPost(boot.token, "choices", body, csrf, () => {
      $("status").textContent = "Connection problem – retrying…";
    });
    busy = false;
    if (out.error !== undefined) {
      $("status").textContent = "Not saved: " + out.error;
      refreshControls();
      return;
    }
    state = out.state;
    render();
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (!$("intro").hidden) {
      if (ev.key === "Enter") { ev.preventDefault(); $("start").click(); }
      return;
    }
    if ($("trial").hidden) return;
    let handled = true;
    if (ev.key === "ArrowLeft") send("left");
    else if (ev.key === "ArrowRight") send("right");
    else if (ev.key === "=" && state.allow_ties) send("tie");
    else handled = false;
    if (handled) ev.preventDefault();
  }, true);

  render();
})();
