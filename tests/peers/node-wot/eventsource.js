// An EventSource client (the one node-wot's SSE subscriptions use), which like a browser's
// sends no Authorization header: it opens URL (a stream with a stream ticket) and prints each
// message's data on a line of its own; "ERROR <status>" if the stream is refused.
// Usage: node eventsource.js URL
"use strict";
const EventSource = require("eventsource");

const source = new EventSource(process.argv[2]);
source.onopen = () => console.log("OPEN");
source.onmessage = (event) => console.log(`DATA ${event.data}`);
source.onerror = (event) => {
  console.log(`ERROR ${event.status ?? event.message ?? "closed"}`);
  source.close();
  process.exit(1);
};
