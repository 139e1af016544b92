// DigitOps drawing page: a canvas drawn on with Pointer Events, sent to POST /api/predict.
// No framework and no inline script (the Content-Security-Policy forbids it).
"use strict";

(() => {
  // Pen width as a fraction of the canvas side, and the side of the PNG sent to the API
  // whatever the screen's pixel density: contract.py's PEN_WIDTH and CANVAS_EXPORT_SIDE, which
  // the drawn-digit test set draws with too. A digit drawn about 2/3 of the canvas tall becomes
  // ~2 px strokes once the model fits it into MNIST's 20x20 box: MNIST-like ink.
  const PEN_WIDTH = Number(document.body.dataset.penWidth);
  const EXPORT_SIDE = Number(document.body.dataset.exportSide);
  const AUTO_PREDICT_MS = 400; // quiet time after a stroke ends before predicting on our own

  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const predictUrl = document.body.dataset.predictUrl;
  const feedbackUrl = document.body.dataset.feedbackUrl; // absent when FEEDBACK=off
  const bars = Array.from($("probabilities").querySelectorAll("li"));

  const strokes = []; // each stroke is a list of [x, y] points in 0..1 canvas units
  let current = null; // the stroke being drawn
  let activePointer = null;
  let autoTimer = 0;
  let requestSeq = 0; // answers to older requests are dropped
  let inflight = null;
  let predictionId = null; // the answer on screen, for a correction

  // ---- drawing -------------------------------------------------------------------------

  function paint(c, side) {
    c.fillStyle = "#fff";
    c.fillRect(0, 0, side, side);
    for (const stroke of strokes) paintStroke(c, stroke, side, 0);
  }

  function paintStroke(c, stroke, side, from) {
    c.strokeStyle = "#000";
    c.fillStyle = "#000";
    c.lineWidth = PEN_WIDTH * side;
    c.lineCap = "round";
    c.lineJoin = "round";
    if (stroke.length === 1) {
      const [x, y] = stroke[0];
      c.beginPath();
      c.arc(x * side, y * side, c.lineWidth / 2, 0, 2 * Math.PI);
      c.fill();
      return;
    }
    c.beginPath();
    const start = Math.max(from - 1, 0);
    c.moveTo(stroke[start][0] * side, stroke[start][1] * side);
    for (let i = start + 1; i < stroke.length; i++) c.lineTo(stroke[i][0] * side, stroke[i][1] * side);
    c.stroke();
  }

  // Match the backing store to the displayed size times the pixel density: sharp on HiDPI.
  function fitToScreen() {
    const side = Math.round(canvas.getBoundingClientRect().width * (window.devicePixelRatio || 1));
    if (side > 0 && canvas.width !== side) {
      canvas.width = side;
      canvas.height = side;
    }
    paint(ctx, canvas.width);
  }

  function pointOf(event) {
    const box = canvas.getBoundingClientRect();
    const clamp = (v) => Math.min(Math.max(v, 0), 1);
    return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (activePointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    canvas.focus({ preventScroll: true, focusVisible: false });
    canvas.setPointerCapture(event.pointerId);
    activePointer = event.pointerId;
    cancelAutoPredict();
    current = [pointOf(event)];
    strokes.push(current);
    paintStroke(ctx, current, canvas.width, 0);
  });

  canvas.addEventListener("pointermove", (event) => {
    if (event.pointerId !== activePointer || !current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const from = current.length;
    for (const e of events.length ? events : [event]) current.push(pointOf(e));
    paintStroke(ctx, current, canvas.width, from);
  });

  function endStroke(event) {
    if (event.pointerId !== activePointer) return;
    activePointer = null;
    current = null;
    scheduleAutoPredict();
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  function exportPng() {
    const off = document.createElement("canvas");
    off.width = EXPORT_SIDE;
    off.height = EXPORT_SIDE;
    paint(off.getContext("2d"), EXPORT_SIDE);
    return off.toDataURL("image/png");
  }

  // ---- actions ---------------------------------------------------------------------------

  function scheduleAutoPredict() {
    cancelAutoPredict();
    autoTimer = window.setTimeout(predict, AUTO_PREDICT_MS);
  }

  function cancelAutoPredict() {
    window.clearTimeout(autoTimer);
  }

  function forgetRequest() {
    requestSeq++;
    if (inflight) inflight.abort();
    inflight = null;
    setBusy(false);
  }

  function clearDrawing() {
    cancelAutoPredict();
    forgetRequest();
    strokes.length = 0;
    paint(ctx, canvas.width);
    resetAnswer();
    hideMessage();
  }

  function undo() {
    cancelAutoPredict();
    forgetRequest();
    strokes.pop();
    paint(ctx, canvas.width);
    if (strokes.length) {
      scheduleAutoPredict();
    } else {
      resetAnswer();
      hideMessage();
    }
  }

  async function predict() {
    cancelAutoPredict();
    if (!strokes.length) {
      resetAnswer();
      showMessage("Nothing to read yet: draw a digit first, then press Predict.", "empty");
      return;
    }
    forgetRequest();
    const mine = requestSeq;
    inflight = new AbortController();
    setBusy(true);
    try {
      const response = await fetch(predictUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ image: exportPng() }),
        signal: inflight.signal,
      });
      const body = await response.json().catch(() => null);
      if (mine !== requestSeq) return;
      if (response.ok && body) {
        hideMessage();
        showAnswer(body);
      } else {
        resetAnswer();
        showProblem(response.status, body && body.error);
      }
    } catch (error) {
      if (error.name === "AbortError" || mine !== requestSeq) return;
      resetAnswer();
      showProblem(0, null);
    } finally {
      if (mine === requestSeq) setBusy(false);
    }
  }

  // ---- showing answers -------------------------------------------------------------------

  function showAnswer(body) {
    const top = body.probabilities[body.digit];
    $("digit").textContent = String(body.digit);
    $("confidence").textContent = body.confident ? `(${percent(top)} sure)` : "(a guess)";
    const [first, second] = body.top;
    $("result").classList.toggle("unsure", !body.confident);
    $("unsure").hidden = body.confident;
    $("unsure").querySelector(".first").textContent = `${first.digit} (${percent(first.probability)})`;
    $("unsure").querySelector(".second").textContent = `${second.digit} (${percent(second.probability)})`;
    const line = $("answer-line");
    line.textContent = body.confident
      ? `It is ${body.digit} · ${percent(top)} sure`
      : `Not sure: ${first.digit} or ${second.digit}?`;
    line.hidden = false;
    showChallenger(body.challenger, body.model.name);
    showFeedback(body.prediction_id);
    bars.forEach((li, d) => {
      const p = body.probabilities[d];
      li.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
      li.querySelector(".value").textContent = percent(p);
      li.classList.toggle("top", d === body.digit);
    });
    showNormalized(body.normalized);
    showModel(body.model);
  }

  function resetAnswer() {
    $("digit").textContent = "–";
    $("result").classList.remove("unsure");
    $("unsure").hidden = true;
    $("answer-line").hidden = true;
    $("challenger").hidden = true;
    showFeedback(null);
    $("confidence").textContent = "";
    $("model-version").textContent = "–";
    bars.forEach((li) => {
      li.querySelector(".fill").style.width = "0";
      li.querySelector(".value").textContent = "–";
      li.classList.remove("top");
    });
    const seen = $("normalized");
    seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  }

  function percent(p) {
    return `${(p * 100).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1)}%`;
  }

  // `normalized` is MNIST's convention (light ink on dark, 0-255): shown exactly as the model saw it.
  function showNormalized(rows) {
    const seen = $("normalized");
    const image = seen.getContext("2d").createImageData(seen.width, seen.height);
    rows.forEach((row, y) => row.forEach((v, x) => {
      const i = 4 * (y * seen.width + x);
      const g = Math.round(Math.min(Math.max(v, 0), 255));
      image.data.set([g, g, g, 255], i);
    }));
    seen.getContext("2d").putImageData(image, 0, 0);
  }

  function showModel(model) {
    showVersion($("model-version"), model.name, model);
  }

  function showVersion(target, name, model) {
    target.replaceChildren(document.createTextNode(`${name} v${model.version} (${model.label})`));
    if (model.run && model.run.url) {
      const link = document.createElement("a");
      link.href = model.run.url;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = `MLflow run ${model.run.run_id.slice(0, 8)}`;
      target.append(" · ", link);
    }
  }

  // The version label canary names, asked beside the main answer; absent when there is none.
  function showChallenger(challenger, name) {
    const box = $("challenger");
    box.hidden = !challenger;
    if (!challenger) return;
    showVersion($("challenger-model"), name, challenger);
    if (challenger.digit === null) {
      $("challenger-digit").textContent = "";
      $("challenger-note").textContent = `not in time (${challenger.note})`;
    } else {
      $("challenger-digit").textContent = String(challenger.digit);
      const p = challenger.probabilities[challenger.digit];
      $("challenger-note").textContent = `${percent(p)} sure, ${challenger.agrees ? "agrees" : "disagrees"}`;
    }
    box.dataset.agrees = String(Boolean(challenger.agrees));
  }

  // ---- corrections -----------------------------------------------------------------------

  function showFeedback(id) {
    predictionId = id;
    const box = $("feedback");
    if (!box) return;
    box.hidden = !id;
    box.querySelectorAll("button").forEach((b) => {
      b.setAttribute("aria-pressed", "false");
      b.disabled = false;
    });
    $("feedback-status").textContent = "";
  }

  async function sendFeedback(button, digit) {
    if (!predictionId) return;
    const id = predictionId;
    const status = $("feedback-status");
    status.textContent = "Sending…";
    try {
      const response = await fetch(feedbackUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ prediction_id: id, digit }),
      });
      const body = await response.json().catch(() => null);
      if (id !== predictionId) return; // a newer answer replaced this one meanwhile
      if (response.status === 201) {
        $("feedback").querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", "false"));
        button.setAttribute("aria-pressed", "true");
        status.textContent = digit === null
          ? "Thanks: kept as right."
          : `Thanks: kept as a ${digit} for training.`;
      } else {
        status.textContent = (body && body.error) || `Not kept (HTTP ${response.status}).`;
      }
    } catch (error) {
      if (id === predictionId) status.textContent = "Not kept: the web UI could not be reached.";
    }
  }

  if ($("feedback")) {
    $("right").addEventListener("click", (event) => sendFeedback(event.currentTarget, null));
    $("wrong").querySelectorAll("button").forEach((b) => b.addEventListener(
      "click", () => sendFeedback(b, Number(b.dataset.digit))));
  }

  // 422 is the server's "empty drawing": a hint, not an error. Everything else is a problem.
  function showProblem(status, text) {
    if (status === 422) {
      showMessage(text || "The canvas looks empty: draw a digit first.", "empty");
    } else if (status === 0) {
      showMessage("The web UI could not be reached. Check your connection and try again.", "problem");
    } else if (status >= 500) {
      showMessage(text || "The model service is unavailable right now. Please try again soon.", "problem");
    } else {
      showMessage(text || `The request was refused (HTTP ${status}).`, "problem");
    }
  }

  function showMessage(text, kind) {
    const box = $("error");
    box.textContent = text;
    box.dataset.kind = kind;
    box.hidden = false;
  }

  function hideMessage() {
    const box = $("error");
    box.hidden = true;
    box.textContent = "";
    delete box.dataset.kind;
  }

  function setBusy(busy) {
    $("predict").setAttribute("aria-busy", String(busy));
    document.body.classList.toggle("busy", busy);
  }

  // ---- wiring ----------------------------------------------------------------------------

  $("predict").addEventListener("click", predict);
  $("clear").addEventListener("click", clearDrawing);
  $("undo").addEventListener("click", undo);

  // Drawing needs a pointer; keyboard users can act on a drawing from the focused canvas.
  canvas.addEventListener("keydown", (event) => {
    const key = event.key;
    if (key === "Enter" || key === " ") {
      predict();
    } else if (key === "Escape" || key === "Delete" || key === "Backspace") {
      clearDrawing();
    } else if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") {
      undo();
    } else {
      return;
    }
    event.preventDefault();
  });

  new ResizeObserver(fitToScreen).observe(canvas);
  window.addEventListener("resize", fitToScreen);
  fitToScreen();
  resetAnswer();
})();
