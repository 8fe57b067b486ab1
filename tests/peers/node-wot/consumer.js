// node-wot (the Eclipse Thingweb runtime) as a consumer of iotas' own Thing Descriptions,
// through their forms alone: no iotas-specific code. Driven by
// tests/integration/wot_client/test_node_wot_consumer.py.
// Usage: node consumer.js BASE_URL TOKEN THING_ID PROPERTY EVENT
// Prints one JSON object per line, {"step": ...}; after "observing" it waits for the test to
// change the Thing, and prints what it was told ("observed", "event"); a line "stop" on stdin
// unobserves, unsubscribes and exits.
"use strict";
const readline = require("node:readline");
const { Servient } = require("@node-wot/core");
const { HttpClientFactory } = require("@node-wot/binding-http");

const [base, token, thingId, property, eventName] = process.argv.slice(2);
const say = (step, more) => console.log(JSON.stringify({ step, ...more }));

async function main() {
  const servient = new Servient();
  servient.addClientFactory(new HttpClientFactory(null));
  const WoT = await servient.start();

  // The directory's TD is public; node-wot checks it against its TD schema.
  const directoryTd = await WoT.requestThingDescription(`${base}/.well-known/wot`);
  say("directory", { id: directoryTd.id, base: directoryTd.base });
  servient.addCredentials({ [directoryTd.id]: { token } });

  // exploreDirectory reads the `things` property and yields each TD its schema accepts.
  const discovery = await WoT.exploreDirectory(`${base}/.well-known/wot`);
  const ids = [];
  for await (const td of discovery) ids.push(td.id);
  say("explored", { ids, error: discovery.error ? String(discovery.error.message) : null });

  const directory = await WoT.consume(directoryTd);
  const retrieved = await directory.invokeAction("retrieveThing", undefined, {
    uriVariables: { id: thingId },
  });
  const td = await retrieved.value();
  say("retrieved", { id: td.id, context: td["@context"] });
  const searched = await directory.invokeAction("searchJSONPath", undefined, {
    uriVariables: { query: `$[?@.id == '${thingId}'].title` },
  });
  say("searched", { values: await searched.value() });

  servient.addCredentials({ [td.id]: { token } });
  const thing = await WoT.consume(td);
  const read = await thing.readProperty(property);
  say("read", { value: await read.value() });
  await thing.writeProperty(property, 42);
  say("wrote", { value: 42 });
  try {
    await thing.writeProperty(property, 500);
    say("refused", { error: null });
  } catch (error) {
    say("refused", { error: String(error.message) });
  }

  const observation = await thing.observeProperty(property, async (output) => {
    say("observed", { value: await output.value() });
  });
  const subscription = await thing.subscribeEvent(eventName, async (output) => {
    say("event", { data: await output.value() });
  });
  say("observing", {});

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === "stop") break;
  }
  await observation.stop();
  await subscription.stop();
  say("stopped", {});
  await servient.shutdown();
  process.exit(0);
}

main().catch((error) => {
  say("failed", { error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
});
