# runwatchd in a container, for NAS appliances (Synology, TrueNAS, Unraid) and any Docker or
# Podman host; compose.yaml shows the volumes, PUID/PGID and the key as a docker secret.
#
#   docker build -t runwatchd .
#   docker run -d -e PUID=1026 -e PGID=100 -v "$PWD/config:/config" -v runwatchd-state:/state \
#       -v /volume1/media/hot:/watch/hot -v "$PWD/runway_api_secret:/run/secrets/runway_api_secret:ro" \
#       runwatchd

FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
# The whole program in a virtualenv of its own, copied as it is into the final image.
RUN python -m venv /opt/runwatchd \
 && /opt/runwatchd/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && /opt/runwatchd/bin/pip uninstall --yes pip setuptools

FROM python:3.11-slim
# The service user; the entrypoint moves it to PUID:PGID, then drops to it.
RUN groupadd --system --gid 1000 runwatchd \
 && useradd --system --uid 1000 --gid runwatchd --home-dir /state --no-create-home \
        --shell /usr/sbin/nologin runwatchd \
 && install -d -o runwatchd -g runwatchd -m 0750 /state \
 && install -d -o runwatchd -g runwatchd -m 0755 /config
COPY --from=build /opt/runwatchd /opt/runwatchd
COPY docker/entrypoint.sh docker/healthcheck.sh /usr/local/bin/
COPY docker/config.toml /usr/local/share/runwatchd/config.toml
ENV PATH=/opt/runwatchd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PUID=1000 \
    PGID=1000 \
    RUNWATCHD_CONFIG=/config/config.toml \
    STATE_DIRECTORY=/state
VOLUME ["/config", "/state"]
# Prometheus metrics, once [daemon] metrics = "0.0.0.0:9464" is set.
EXPOSE 9464
# The catch-up scan of a large NAS tree may take minutes before the daemon reports in.
HEALTHCHECK --interval=60s --timeout=15s --start-period=10m --retries=3 CMD ["healthcheck.sh"]
# runwatchd drains uploads for [daemon] grace_seconds on SIGTERM: give it longer than that
# (docker stop -t 60, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["entrypoint.sh"]
CMD ["runwatchd", "run"]
