#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, from a fresh clone.
#   1. a synthetic county landing zone (demo/landing, with ground truth in _truth/)
#   2. the daily DAG chain under Airflow on SQLite (`dag.test()`, no scheduler needed):
#      meterlake_ingest -> meterlake_marts -> meterlake_publish, chained by assets
#   3. DuckDB reporting DB, data dictionary and HTML report, and the row accounting
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow_env.sh

METERS="${DEMO_METERS:-3000}"
DAYS="${DEMO_DAYS:-31}"
START="${DEMO_START:-2026-01-01}"
END="$(python -c "import datetime as d; print(d.date.fromisoformat('$START') + d.timedelta(days=$DAYS - 1))")"
LOGICAL="$(python -c "import datetime as d; print(d.date.fromisoformat('$END') + d.timedelta(days=1))")"

if [ ! -f "$METERLAKE_LANDING/_truth/injections.csv" ]; then
    rm -rf "$METERLAKE_LANDING"
    meterlake generate --out "$METERLAKE_LANDING" --meters "$METERS" --days "$DAYS" --start "$START" --seed 7
fi

mkdir -p "$AIRFLOW_HOME"
echo "== Airflow metadata DB (SQLite) in $AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
# one writer of the lake at a time (every meterlake task runs in this pool)
airflow pools set meterlake_lake 1 "one writer of the meterlake lake at a time" > /dev/null

echo "== running the DAG chain for $START .. $END (Airflow logs: $AIRFLOW_HOME/demo-dags.log)"
python scripts/airflow_chain.py meterlake_ingest "$LOGICAL" --no-retries \
    --conf "{\"start\": \"$START\", \"end\": \"$END\"}" --summary "$AIRFLOW_HOME/demo-chain.json" \
    > "$AIRFLOW_HOME/demo-dags.log" 2>&1 \
    || { tail -n 60 "$AIRFLOW_HOME/demo-dags.log"; echo "demo: the DAG chain failed (log above)"; exit 1; }
python - "$AIRFLOW_HOME/demo-chain.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
for run in summary["runs"]:
    print(f"  {run.get('dag_id')}: {run.get('state')}  ({run.get('run_id', '')})")
PY

echo
meterlake status --lake "$METERLAKE_LAKE"
echo
echo "Open the report in a browser; query the marts with DuckDB (duckdb -ui, DBeaver or Superset) from the reporting db above."
