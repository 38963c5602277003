# Build a single executable with Deno, then run it on a slim Debian with the
# external tools cairn calls: pg_dump / pg_restore, GNU tar, zstd, coreutils' sync.
# pg_dump comes from the PostgreSQL project's own apt repository (apt.postgresql.org):
# its postgresql-client package always depends on the newest major, and a newer
# pg_dump dumps every older server, while Debian bookworm's is 15, which refuses 16+.
#   docker build -t cairn .
#   docker run -e CAIRN_ADMIN_KEY=change-me -p 127.0.0.1:4052:4052 -v cairn-data:/var/lib/cairn -v /srv/data:/data:ro cairn
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY src ./src
RUN deno install --frozen && deno task compile

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl postgresql-common tar zstd coreutils \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends postgresql-client \
 && pg_dump --version && tar --version | head -1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/cairn --shell /usr/sbin/nologin cairn \
 && mkdir -p /var/lib/cairn /etc/cairn \
 && chown cairn:cairn /var/lib/cairn
COPY --from=build /src/dist/cairn /usr/local/bin/cairn
COPY config/docker.yaml /etc/cairn/cairn.yaml
USER cairn
WORKDIR /var/lib/cairn
ENV CAIRN_CONFIG=/etc/cairn/cairn.yaml DENO_NO_UPDATE_CHECK=1
VOLUME ["/var/lib/cairn"]
EXPOSE 4052
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fsS http://127.0.0.1:4052/admin/health || exit 1
ENTRYPOINT ["/usr/local/bin/cairn"]
CMD ["daemon"]
