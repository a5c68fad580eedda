#!/usr/bin/env bash
# Installs every component that is missing. Components whose endpoint is
# configured (REDIS_URL, TEMPORAL_ADDRESS, DYNAMODB_ENDPOINT) are skipped.
source "$(dirname "$0")/lib.sh"
INFRA_DIR="$(cd "$(dirname "$0")" && pwd)"

[ -n "${REDIS_URL:-}" ] && [ -z "${TOLLGATE_INSTALL_ALL:-}" ] || bash "$INFRA_DIR/install-redis.sh"
[ -n "${TEMPORAL_ADDRESS:-}" ] && [ -z "${TOLLGATE_INSTALL_ALL:-}" ] || bash "$INFRA_DIR/install-temporal.sh"
[ -n "${DYNAMODB_ENDPOINT:-}" ] && [ -z "${TOLLGATE_INSTALL_ALL:-}" ] || bash "$INFRA_DIR/install-dynamodb.sh"
