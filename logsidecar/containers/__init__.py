"""Docker knowledge, kept apart from the tailer (which knows only paths).

engine       connect to the engine, with errors a person can act on
mounts       where a container's log directory lives on the host (binds, volumes, volumes_from)
metadata     container metadata as OpenTelemetry resource attributes
sidecar      start/remove a logsidecar container sharing another container's volumes
timezone     the zone a container writes its error-log times in (TZ, /etc/localtime, else UTC)
state        the sidecar's state volume, logsidecar-state-<container>, and removing only ours
audit        volumes no container references, anonymous leftovers, engine-created bind dirs
image_check  VOLUME declarations and build steps that wrote into them after the declaration
build_history  an image's history records (classic builder and BuildKit) as steps
shell_writes   which paths a RUN's shell text certainly writes, and what it cannot tell
"""
