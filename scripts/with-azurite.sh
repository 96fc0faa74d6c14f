#!/usr/bin/env bash
# Runs a command with Azurite (Table + Queue + Blob) listening on free loopback ports,
# and always stops it afterwards. Exports AZURITE_CONNECTION_STRING for the tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
azurite="$here/node_modules/.bin/azurite"
[ -x "$azurite" ] || { echo "with-azurite: $azurite missing (run npm install)" >&2; exit 2; }
workdir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
blob=$(free_port); queue=$(free_port); table=$(free_port)
"$azurite" --silent --disableTelemetry --skipApiVersionCheck --inMemoryPersistence \
  --blobHost 127.0.0.1 --blobPort "$blob" --queueHost 127.0.0.1 --queuePort "$queue" \
  --tableHost 127.0.0.1 --tablePort "$table" >"$workdir/azurite.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$workdir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  if python3 - "$table" "$queue" <<'PY' 2>/dev/null; then break; fi
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), timeout=0.2).close()
PY
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null || { echo "with-azurite: Azurite failed to start:" >&2; cat "$workdir/azurite.log" >&2; exit 2; }
key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
export AZURITE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$blob/devstoreaccount1;QueueEndpoint=http://127.0.0.1:$queue/devstoreaccount1;TableEndpoint=http://127.0.0.1:$table/devstoreaccount1;"
set +e
"$@"
rc=$?
exit $rc
