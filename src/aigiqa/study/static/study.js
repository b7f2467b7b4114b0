// aigiqa study: the subject's rating page. State lives on the server; this script shows the
// current trial, reads the slider/keyboard and posts one rating at a time (retrying with the
// same submission id, so a retry can never store a second rating).
"use strict";
(function () {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const scale = boot.scale;
  const $ = (id) => document.getElementById(id);
  const slider = $("slider"), output = $("value"), submit = $("submit"), image = $("image");
  let state = boot.state;
  let touched = false, busy = false, imageReady = false, submissionId = null;
  const dismissedIntro = new Set();

  function newSubmissionId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  const decimals = Math.max(0, (String(scale.step).split(".")[1] || "").length);
  function snap(v) {
    const k = Math.round((v - scale.lo) / scale.step);
    const snapped = Math.min(scale.hi, Math.max(scale.lo, scale.lo + k * scale.step));
    return Number(snapped.toFixed(decimals));
  }
  function labelFor(v) {
    const n = scale.labels.length;
    if (!n) return "";
    const frac = (v - scale.lo) / (scale.hi - scale.lo);
    return scale.labels[Math.min(n - 1, Math.floor(frac * n))];
  }
  function setValue(v) {
    slider.value = String(snap(v));
    touched = true;
    refreshControls();
  }
  function refreshControls() {
    if (touched) {
      const v = Number(slider.value);
      output.textContent = v.toFixed(decimals) + " – " + labelFor(v);
    } else {
      output.textContent = "move the slider";
    }
    submit.disabled = !(touched && imageReady) || busy;
  }

  function showProgress() {
    const pct = state.total ? (100 * state.done) / state.total : 100;
    $("bar-fill").style.width = pct.toFixed(1) + "%";
    const session = state.trial ? state.trial.session : state.sessions;
    $("progress-text").textContent =
      state.done + " / " + state.total + " rated · session " + session + " of " + state.sessions;
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
        ? "Welcome"
        : "Session " + t.session + " of " + state.sessions;
      $("intro-text").textContent = t.session === 1
        ? "You will see images made from a text prompt. Rate the overall quality of each image "
          + "from " + scale.lo + " (" + (scale.labels[0] || "worst") + ") to " + scale.hi + " ("
          + (scale.labels[scale.labels.length - 1] || "best") + "). "
          + (t.kind === "training" ? "The first images are for training: each one comes with "
            + "an explanation." : "")
        : "Well done: the previous session is finished. Take a break if you like, then "
          + "continue with the next session.";
      show("intro");
      $("start").focus();
      return;
    }
    show("trial");
    $("prompt").textContent = t.prompt || "(no prompt)";
    $("kind-badge").hidden = t.kind !== "training";
    $("kind-badge").textContent = "Training";
    $("note").hidden = !t.note;
    $("note").textContent = t.note || "";
    $("status").textContent = "";
    touched = false;
    imageReady = false;
    submissionId = newSubmissionId();
    slider.value = String(snap((scale.lo + scale.hi) / 2));
    refreshControls();
    image.src = t.image_url;
  }

  image.addEventListener("load", () => { imageReady = true; refreshControls(); });
  image.addEventListener("error", () => { $("status").textContent = "The image could not be loaded; reload the page."; });
  slider.addEventListener("input", () => { touched = true; refreshControls(); });
  $("start").addEventListener("click", () => {
    dismissedIntro.add(state.trial.session);
    render();
  });
  submit.addEventListener("click", send);

  async function send() {
    if (!touched || !imageReady || busy || state.finished) return;
    busy = true;
    refreshControls();
    const body = JSON.stringify({ trial_id: state.trial.id, value: Number(slider.value),
                                  submission_id: submissionId });
    const out = await window.aigiqaPost(boot.token, "ratings", body, csrf, () => {
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
    const step = scale.step * (ev.shiftKey ? 10 : 1);
    const v = Number(slider.value);
    let handled = true;
    if (ev.key === "ArrowRight" || ev.key === "ArrowUp") setValue(v + step);
    else if (ev.key === "ArrowLeft" || ev.key === "ArrowDown") setValue(v - step);
    else if (ev.key === "Home") setValue(scale.lo);
    else if (ev.key === "End") setValue(scale.hi);
    else if (/^[0-9]$/.test(ev.key)) {
      const d = Number(ev.key);
      const span = scale.hi - scale.lo;
      setValue(span <= 9 ? scale.lo + d : scale.lo + (d / 9) * span);
    } else if (ev.key === "Enter") send();
    else handled = false;
    if (handled) ev.preventDefault();
  }, true);

  render();
})();
