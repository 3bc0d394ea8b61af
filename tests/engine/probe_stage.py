"""A small real stage for the contract tests: one row and one file per item, with failure modes.

Items are strings: "raise" raises inside process (-> the stage's error rows), "boom" kills the
worker process (-> the driver's crash path), anything else succeeds. Kept in an importable
module so spawned pool workers can unpickle it.
"""
from __future__ import annotations

import os

import pyarrow as pa

from s2vforge.engine.stage import Context, Output, Resources, Stage, StageRun
from s2vforge.schema import TableSpec

PROBE_SCHEMA = pa.schema([("item", pa.string()), ("status", pa.string()), ("value", pa.string()),
                          ("pid", pa.int64()), ("setups", pa.int64())])


class ProbeStage(Stage):
    name = "probe"
    tables = {"probe": TableSpec(PROBE_SCHEMA, "item")}
    published = ("probe",)
    resources = Resources(num_cpus=1, actors=0)

    def __init__(self, suffix: str = "v1", die_on: str = "boom", fail_setup: bool = False) -> None:
        self.suffix, self.die_on, self.fail_setup = suffix, die_on, fail_setup
        self.setups = 0          # counts setup() calls in this worker

    def config(self) -> dict:
        return {"suffix": self.suffix}

    def key(self, item: str) -> str:
        return item

    def setup(self) -> None:
        if self.fail_setup:
            raise OSError("model weights not found in /nowhere")
        self.setups += 1

    def process(self, item: str, ctx: Context) -> Output:
        if item == self.die_on:
            os._exit(7)
        if item == "raise":
            raise ValueError("bad item")
        value = f"{item}-{self.suffix}"
        return Output(rows={"probe": [{"item": item, "status": "ok", "value": value, "pid": os.getpid(),
                                       "setups": self.setups}]},
                      files={f"probe/{value}.txt": value.encode()}, meta={"key": item, "status": "ok", "error": None})

    def error_output(self, item: str, message: str) -> Output:
        return Output(rows={"probe": [{"item": item, "status": "error", "value": message}]},
                      meta={"key": item, "status": "error", "error": message})

    def summarize(self, run: StageRun) -> dict:
        return {"n_values": run.tables["probe"].num_rows}
