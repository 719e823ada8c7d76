// skyhop dashboard: live logs. Every <pre data-sse="URL"> follows that server-sent
// event stream: "log" events carry text (appended as text nodes, never parsed as HTML),
// "end" says the request finished (the stream is closed then: no reconnect), and on a
// dropped connection EventSource reconnects with Last-Event-ID, the byte offset reached.
(function () {
  "use strict";

  function follow(pre) {
    var state = document.getElementById(pre.id + "-state");
    var say = function (text, kind) {
      if (state) { state.textContent = text; state.className = "log-state " + (kind || ""); }
    };
    var source = new EventSource(pre.dataset.sse);
    source.addEventListener("open", function () { say("streaming…", "run"); });
    source.addEventListener("log", function (e) {
      var stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.appendChild(document.createTextNode(JSON.parse(e.data)));
      if (stick) { pre.scrollTop = pre.scrollHeight; }
    });
    source.addEventListener("end", function (e) {
      source.close();
      var end = JSON.parse(e.data);
      var text = "finished: " + end.status;
      if (end.result !== null && end.result !== undefined) { text += " (result " + JSON.stringify(end.result) + ")"; }
      if (end.error) { text += " — " + end.error; }
      say(text, end.status === "SUCCEEDED" ? "ok" : "bad");
    });
    source.addEventListener("error", function () {
      if (source.readyState !== EventSource.CLOSED) { say("reconnecting…", "run"); }
    });
  }

  document.querySelectorAll("pre[data-sse]").forEach(follow);
})();
