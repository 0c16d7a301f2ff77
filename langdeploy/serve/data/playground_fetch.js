// langdeploy: LangServe's chat playground with the chat-shaped schemas and the server's errors
// (see serve/playground.py). This wraps the page's fetch:
// - its schema requests (it asks /c/<config>/input_schema and /output_schema of the server,
//   never the schemas embedded in the page) get the embedded, chat-shaped copies;
// - its /stream_log calls fail with the server's message ({"error": {"message": ...}}) when the
//   server refuses the request or sends `event: error`, which the page shows in its error toast
//   (its stream client would drop the body and ignore the event).
(function () {
  "use strict";
  var realFetch = window.fetch.bind(window);

  function messageOf(text, fallback) {
    try {
      var body = JSON.parse(text);
      var error = body && (body.error || body);
      if (error && typeof error.message === "string" && error.message) return error.message;
    } catch (e) {
      // not JSON: use the text itself
    }
    return text || fallback;
  }

  function pathOf(input) {
    var url = typeof input === "string" || input instanceof URL ? String(input) : input && input.url;
    try {
      return new URL(String(url), window.location.href).pathname;
    } catch (e) {
      return "";
    }
  }

  // Pass the event stream through; at an `error` event, fail it with that event's message.
  function watchErrors(body) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var pending = "";
    return new ReadableStream({
      pull: function (controller) {
        return reader.read().then(function (step) {
          if (step.done) {
            controller.close();
            return;
          }
          pending += decoder.decode(step.value, { stream: true });
          var events = pending.split(/\r?\n\r?\n/);
          pending = events.pop();
          for (var i = 0; i < events.length; i++) {
            var lines = events[i].split(/\r?\n/);
            if (lines.indexOf("event: error") === -1 && lines.indexOf("event:error") === -1) continue;
            var data = lines
              .filter(function (l) { return l.indexOf("data:") === 0; })
              .map(function (l) { return l.slice(5).replace(/^ /, ""); })
              .join("\n");
            reader.cancel();
            controller.error(new Error(messageOf(data, "The stream ended with an error.")));
            return;
          }
          controller.enqueue(step.value);
        });
      },
      cancel: function (reason) {
        return reader.cancel(reason);
      },
    });
  }

  window.fetch = function (input, init) {
    var path = pathOf(input);
    var schema = /\/input_schema$/.test(path) ? window.INPUT_SCHEMA
      : /\/output_schema$/.test(path) ? window.OUTPUT_SCHEMA : undefined;
    if (schema) {
      return Promise.resolve(new Response(JSON.stringify(schema), {
        status: 200,
        headers: { "Content-Type": "application/json" },
      }));
    }
    if (!/\/stream_log$/.test(path)) return realFetch(input, init);
    return realFetch(input, init).then(function (response) {
      if (!response.ok) {
        return response.text().then(function (text) {
          throw new Error(messageOf(text, "The server answered " + response.status + "."));
        });
      }
      if (!response.body) return response;
      return new Response(watchErrors(response.body), {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    });
  };
})();
