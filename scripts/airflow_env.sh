# Airflow's embedded default for meterlake: source this file, don't run it.
#
#     source scripts/airflow_env.sh
#     airflow db migrate                       # once: SQLite metadata DB in .airflow/
#     airflow dags test meterlake_ingest 2026-01-09
#
# Everything lives under the repository: the metadata DB, logs and airflow.cfg in
# .airflow/ (git-ignored), the DAGs in dags/. Production sets its own environment
# instead (PostgreSQL, CeleryExecutor): see docs/airflow.md.

_meterlake_repo="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"

export AIRFLOW_HOME="$_meterlake_repo/.airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$_meterlake_repo/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# naive dates on the command line (`dags test X 2026-01-09`, `backfill create
# --from-date ...`) and the UI are in local time, like the data
export AIRFLOW__CORE__DEFAULT_TIMEZONE=Asia/Shanghai
# `airflow standalone` UI on :8080 without a generated password (local only)
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True

# where the DAGs read and write when no param overrides it (keep values already set)
export METERLAKE_LANDING="${METERLAKE_LANDING:-$_meterlake_repo/demo/landing}"
export METERLAKE_LAKE="${METERLAKE_LAKE:-$_meterlake_repo/demo/lake}"

# the virtualenv's airflow and python first
if [ -d "$_meterlake_repo/.venv/bin" ]; then
    case ":$PATH:" in
        *":$_meterlake_repo/.venv/bin:"*) ;;
        *) export PATH="$_meterlake_repo/.venv/bin:$PATH" ;;
    esac
fi
unset _meterlake_repo
