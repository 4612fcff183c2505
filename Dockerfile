# cliproxy-server: a small image with one static-ish binary, running as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cliproxy-server \
 && strip target/release/cliproxy-server

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /config --shell /usr/sbin/nologin cliproxy \
 && mkdir -p /config/auths \
 && chown -R cliproxy:cliproxy /config \
 && chmod 700 /config/auths
COPY --from=build /src/target/release/cliproxy-server /usr/local/bin/cliproxy-server
COPY docker/config.yaml /etc/cliproxy/config.yaml
# The built-in config listens on 0.0.0.0 inside the container, so the server refuses to start until a client
# key is set: pass -e CLIPROXY_API_KEY=... or mount your own config with `api-keys`.
ENV CLIPROXY_CONFIG=/etc/cliproxy/config.yaml
USER cliproxy
VOLUME /config
EXPOSE 8317
HEALTHCHECK --interval=30s --timeout=5s CMD ["cliproxy-server", "healthcheck"]
ENTRYPOINT ["cliproxy-server"]
CMD ["serve"]
