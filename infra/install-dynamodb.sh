#!/usr/bin/env bash
# Fetches DynamoDB Local and its sqlite4java native library from Maven Central
# through infra/dynamodb/pom.xml into $TOLLGATE_CACHE_DIR/dynamodb-local-<version>.
source "$(dirname "$0")/lib.sh"
INFRA_DIR="$(cd "$(dirname "$0")" && pwd)"

install_dynamodb() {
  if [ -f "$DYNAMODB_HOME/.complete" ]; then
    log "dynamodb-local: $DYNAMODB_HOME already installed"
    return 0
  fi
  need_cmd java "Install a Java 17+ JRE (apt-get install openjdk-17-jre-headless) or set DYNAMODB_ENDPOINT to a running DynamoDB."
  need_cmd mvn "Install Maven (apt-get install maven) or set DYNAMODB_ENDPOINT to a running DynamoDB."
  log "dynamodb-local: fetching com.amazonaws:DynamoDBLocal:$DYNAMODB_LOCAL_VERSION from Maven Central"
  rm -rf "$DYNAMODB_HOME"; mkdir -p "$DYNAMODB_HOME/lib" "$DYNAMODB_HOME/native"
  mvn -q -B -f "$INFRA_DIR/dynamodb/pom.xml" \
    -Ddynamodb.local.version="$DYNAMODB_LOCAL_VERSION" -Dsqlite4java.version="$SQLITE4JAVA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$DYNAMODB_HOME/lib" -DincludeScope=runtime \
    || die "dynamodb-local: Maven could not fetch DynamoDB Local (see above)"
  # sqlite4java loads libsqlite4java-linux-amd64.so from java.library.path; it
  # must carry exactly that name, without the version suffix Maven adds.
  local so
  so="$(ls "$DYNAMODB_HOME/lib"/libsqlite4java-linux-amd64*.so | head -n1)" \
    || die "dynamodb-local: the sqlite4java native library was not fetched"
  mv "$so" "$DYNAMODB_HOME/native/libsqlite4java-linux-amd64.so"
  touch "$DYNAMODB_HOME/.complete"
  log "dynamodb-local: installed into $DYNAMODB_HOME"
}

with_lock dynamodb install_dynamodb
