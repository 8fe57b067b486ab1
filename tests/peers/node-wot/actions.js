// node-wot (the Eclipse Thingweb runtime) invokes a native iotas Thing's actions through its
// TD's forms alone: no iotas-specific code. Driven by
// tests/integration/td_consumers/test_node_wot_actions.py.
// Usage: node actions.js TD_URL TOKEN ACTION INPUT_JSON FAILING_ACTION INVALID_INPUT_JSON
// Prints one JSON object per line, {"step": ...}: "invoked" (the output), "failure" and
// "refused" (the errors node-wot raised), then exits.
"use strict";
const { Servient } = require("@node-wot/core");
const { HttpClientFactory } = require("@node-wot/binding-http");

const [tdUrl, token, action, input, failing, invalid] = process.argv.slice(2);
const say = (step, more) => console.log(JSON.stringify({ step, ...more }));

async function main() {
  const servient = new Servient();
  servient.addClientFactory(new HttpClientFactory(null));
  const WoT = await servient.start();
  // The TD as any client gets it (the directory's retrieveThing is tested elsewhere).
  const td = await (await fetch(tdUrl, { headers: { Authorization: `Bearer ${token}` } })).json();
  servient.addCredentials({ [td.id]: { token } });
  const thing = await WoT.consume(td);
  say("consumed", { actions: Object.keys(td.actions || {}) });

  const output = await thing.invokeAction(action, JSON.parse(input));
  say("invoked", { output: await output.value() });
  for (const [step, name, value] of [
    ["failure", failing, undefined],
    ["refused", action, JSON.parse(invalid)],
  ]) {
    try {
      const result = await thing.invokeAction(name, value);
      say(step, { error: null, output: await result.value() });
    } catch (error) {
      say(step, { error: String(error.message) });
    }
  }
  await servient.shutdown();
  process.exit(0);
}

main().catch((error) => {
  say("failed", { error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
});
