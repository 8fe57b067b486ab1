// A lamp exposed by node-wot (the Eclipse Thingweb runtime) over HTTP on 127.0.0.1, for
// iotas' tests to adopt by its TD URL. Usage: node lamp.js PORT
// stdin commands (one per line), to act "outside iotas":
//   set <property> <json>    change a value as if someone turned a knob (observers notified)
//   emit <event> <json>      emit an event
// Prints "READY <td url>" once the Thing is exposed.
"use strict";
const readline = require("node:readline");
const { Servient, Helpers } = require("@node-wot/core");
const { HttpServer } = require("@node-wot/binding-http");

const port = Number(process.argv[2]);
Helpers.setStaticAddress("127.0.0.1");

const state = { brightness: 50, on: false, status: "ok" };

const servient = new Servient();
servient.addServer(new HttpServer({ port, address: "127.0.0.1" }));

servient.start().then(async (WoT) => {
  const thing = await WoT.produce({
    title: "lamp",
    description: "A dimmable lamp",
    properties: {
      brightness: { type: "integer", minimum: 0, maximum: 100, observable: true },
      on: { type: "boolean", observable: true },
      status: { type: "string", readOnly: true, observable: true },
    },
    actions: {
      toggle: { output: { type: "boolean" } },
    },
    events: {
      overheat: { data: { type: "string" } },
    },
  });
  for (const name of Object.keys(state)) {
    thing.setPropertyReadHandler(name, async () => state[name]);
  }
  for (const name of ["brightness", "on"]) {
    thing.setPropertyWriteHandler(name, async (value) => {
      state[name] = await value.value();
      await thing.emitPropertyChange(name);
    });
  }
  thing.setActionHandler("toggle", async () => {
    state.on = !state.on;
    await thing.emitPropertyChange("on");
    return state.on;
  });
  await thing.expose();

  readline.createInterface({ input: process.stdin }).on("line", async (line) => {
    const [command, name, ...rest] = line.trim().split(" ");
    const value = JSON.parse(rest.join(" ") || "null");
    if (command === "set") {
      state[name] = value;
      await thing.emitPropertyChange(name);
    } else if (command === "emit") {
      thing.emitEvent(name, value);
    }
    console.log(`DONE ${line.trim()}`);
  });
  console.log(`READY http://127.0.0.1:${port}/lamp`);
});
