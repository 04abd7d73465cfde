"""Docker knowledge, kept apart from the tailer (which knows only paths).

engine       connect to the engine, with errors a person can act on
mounts       where a container's log directory lives on the host (binds, volumes, volumes_from)
metadata     container metadata as OpenTelemetry resource attributes
sidecar      start/remove a logsidecar container sharing another container's volumes
audit        volumes no container references, anonymous leftovers, engine-created bind dirs
image_check  VOLUME declarations and build steps that wrote into them after the declaration
"""
