#!/bin/sh
# Entrypoint of the mlflow and trainer images: check that every folder in WRITABLE_DIRS (the
# bind mounts the program writes) is writable by the uid compose runs us as, then exec the
# command. Without it, a checkout owned by another uid (root, or anyone but 1000) made MLflow
# loop on "unable to open database file" and compose said only "trainer is unhealthy".
set -eu
for dir in ${WRITABLE_DIRS:-}; do
  if [ -d "$dir" ] && ! [ -w "$dir" ]; then
    owner=$(stat -c %u:%g "$dir")
    echo "error: $dir (a folder of your checkout, mounted here) belongs to uid:gid $owner," \
         "but this container runs as $(id -u):$(id -g) and cannot write it." >&2
    echo "Set APP_UID and APP_GID in .env to the checkout owner's (APP_UID=${owner%:*}" \
         "APP_GID=${owner#*:}; on Linux \`id -u\` and \`id -g\`), then docker compose up again." >&2
    exit 78
  fi
done
exec "$@"
