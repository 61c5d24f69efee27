"""Reads back, with MLflow's own Python client, what mlflow_roundtrip.sh sent.

  mlflow_roundtrip_check.py URI FIRST_SHOW_JSON FIRST CACHED FAILED LATER REPLACED_JSON ODD COMMIT USER
"""
import json
import sys

from mlflow.tracking import MlflowClient

(uri, first_show, first, cached, failed, later, replaced_json, odd, commit, user) = sys.argv[1:11]
client = MlflowClient(tracking_uri=uri)
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def experiment(name):
    e = client.get_experiment_by_name(name)
    if e is None:
        raise SystemExit(f"no experiment '{name}' in MLflow")
    return e.experiment_id


def parent(experiment_id, penstock_id):
    runs = client.search_runs([experiment_id], filter_string=f"tags.`penstock.run_id` = '{penstock_id}'")
    check(len(runs) == 1, f"run {penstock_id}: {len(runs)} runs in MLflow with its id, not 1")
    if not runs:
        raise SystemExit("\n".join(problems))
    return runs[0]


def children(experiment_id, run):
    kids = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    return {k.info.run_name: k for k in kids}


roundtrip = experiment("roundtrip")

# 1. Everything of the first run.
shown = json.load(open(first_show))
run = parent(roundtrip, first)
check(run.info.status == "FINISHED", f"first run is {run.info.status}")
check(run.info.run_name == f"mlflow_demo {first}", f"first run is named {run.info.run_name}")
check(run.data.params == {"epochs": "2500", "lr": "0.001", "fail": "0", "label_name": '"demo"'},
      f"first run's params: {run.data.params}")
tags = run.data.tags
check(tags.get("mlflow.user") == user, f"mlflow.user is {tags.get('mlflow.user')}, not {user}")
check(tags.get("mlflow.source.git.commit") == commit, f"git commit tag {tags.get('mlflow.source.git.commit')}")
check(tags.get("penstock.pipeline") == "mlflow_demo", "no pipeline tag")
check(tags.get("penstock.export") == "complete", "not marked complete")
check(run.info.start_time > 0 and run.info.end_time >= run.info.start_time, "start or end time missing")
history = client.get_metric_history(run.info.run_id, "train/loss")
check(len(history) == 2500, f"train/loss has {len(history)} points in MLflow, not 2500")
check(sorted(m.step for m in history) == list(range(2500)), "train/loss steps are not 0..2499")
recorded = {(m["step_number"], m["value"]) for m in shown["metrics"] if m["name"] == "loss"}
sent = {(m.step, m.value) for m in history}
check(recorded == sent, "train/loss in MLflow differs from the workspace's")
check(abs(run.data.metrics.get("evaluate/accuracy", -1) - next(
    m["value"] for m in shown["metrics"] if m["name"] == "accuracy")) < 1e-12, "evaluate/accuracy differs")
steps = children(roundtrip, run)
check(sorted(steps) == ["evaluate", "report", "rows", "train"], f"first run's step runs: {sorted(steps)}")
for name, step in steps.items():
    check(step.info.status == "FINISHED", f"step {name} is {step.info.status}")
    check(step.data.tags.get("penstock.status") == "ran", f"step {name}: penstock.status {step.data.tags.get('penstock.status')}")
    check("duration_s" in step.data.metrics, f"step {name} has no duration_s")
    check(len(step.data.tags.get("penstock.output_digest", "")) == 32, f"step {name} has no output digest")
check(len(client.get_metric_history(steps["train"].info.run_id, "loss")) == 2500, "step train: not 2500 loss points")
shown_steps = {s["step"]: s for s in shown["step_runs"]}
check(steps["train"].data.tags.get("penstock.cache_key") == shown_steps["train"].get("cache_key"),
      "step train's cache key differs from the workspace's")

# 2. The cached rerun.
run = parent(roundtrip, cached)
check(run.info.status == "FINISHED", f"cached run is {run.info.status}")
for name, step in children(roundtrip, run).items():
    check(step.data.tags.get("penstock.status") == "cached", f"cached run: step {name} is {step.data.tags.get('penstock.status')}")
# Its train step hit: its metrics are those of the run that computed it, and say so.
check(len(client.get_metric_history(run.info.run_id, "train/loss")) == 2500, "cached run: not 2500 train/loss points")
cached_steps = children(roundtrip, run)
check(cached_steps["train"].data.tags.get("penstock.metrics_from") == first,
      f"cached run: step train's metrics_from is {cached_steps['train'].data.tags.get('penstock.metrics_from')}")
check(len(client.get_metric_history(cached_steps["train"].info.run_id, "loss")) == 2500,
      "cached run: step train has not 2500 loss points")

# 3. The failed run.
run = parent(roundtrip, failed)
check(run.info.status == "FAILED", f"failed run is {run.info.status}")
steps = children(roundtrip, run)
check(steps["evaluate"].info.status == "FAILED", f"evaluate is {steps['evaluate'].info.status}")
check("asked to fail" in steps["evaluate"].data.tags.get("penstock.error", ""), "evaluate's error not sent")
check(steps["report"].info.status == "KILLED", f"skipped report is {steps['report'].info.status}")
check(steps["report"].data.tags.get("penstock.status") == "skipped", "report not marked skipped")

# 4. Sent later, again, and replaced: one active run, the replacement.
replaced = json.load(open(replaced_json))
run = parent(experiment("later"), later)
check(run.info.run_id == replaced["mlflow_run"], "the active run is not the replacement")
check(not replaced["already"], "--replace said it was already there")
check(run.data.params.get("epochs") == "3", f"later run's epochs: {run.data.params.get('epochs')}")
check(len(children(experiment("later"), run)) == 4, "the replacement has not 4 step runs")

# 5. Values MLflow does not take as they are.
odd_id = experiment("odd")
value = parent(odd_id, odd).data.params.get("label_name", "")
# As the workspace has it: the string parameter's format writes the byte as \xe9.
check(value == '"caf\\xe9"', f"a value that is not UTF-8 arrived as {value!r}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("MLflow's client read back every run as sent")
