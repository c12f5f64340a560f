# ditd container: build stage with the toolchain, runtime stage with the shared
# libraries, the daemon and the bundled model only. Runs as user and group ditd,
# 10001:10001 (not --system: that range ends at 999, and its group id would be
# whatever was free).
#   docker build -t ditd .
#   docker run --rm -p 8080:8080 --stop-timeout 40 ditd
# (docker stop's default 10 s grace is shorter than drain_timeout = 30 s.)

FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential meson ninja-build pkg-config \
        libopenblas-dev libpng-dev zlib1g-dev libjansson-dev libmicrohttpd-dev libuv1-dev \
        libinih-dev libdnnl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --tags runtime: the programs and the bundled model, not the docs, man pages,
# systemd unit or configuration (the latter comes from conf/ below).
RUN meson setup /build --buildtype=release --prefix=/usr/local \
    && meson compile -C /build \
    && meson install -C /build --destdir /out --tags runtime

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libopenblas0-pthread libpng16-16 libjansson4 libmicrohttpd12 libuv1 libinih1 libdnnl2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 ditd \
    && useradd --uid 10001 --gid ditd --no-create-home --shell /usr/sbin/nologin ditd
COPY --from=build /out/usr/local /usr/local
# The container's address lives in the config file, which the health check reads
# too; the daemon writes the port it bound to port_file, so the check also
# follows a --listen given to `docker run`.
COPY conf/ditd.conf /etc/ditd/ditd.conf
RUN sed -i -e 's|^listen = .*|listen = 0.0.0.0:8080|' \
        -e 's|^port_file =.*|port_file = /tmp/ditd.port|' /etc/ditd/ditd.conf \
    && grep -qx 'listen = 0.0.0.0:8080' /etc/ditd/ditd.conf \
    && grep -qx 'port_file = /tmp/ditd.port' /etc/ditd/ditd.conf
ENV DITD_MODEL=/usr/local/share/ditd/models/fashion-dit
USER ditd
EXPOSE 8080
STOPSIGNAL SIGTERM
# Start period covers the model load; the probe is ditd's own (no curl here): it
# takes the address, port file and API keys from the same config file.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/ditd", "--config", "/etc/ditd/ditd.conf", "--probe"]
ENTRYPOINT ["/usr/local/bin/ditd", "--config", "/etc/ditd/ditd.conf"]
