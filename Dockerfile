# Build: docker build -t orrery .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY config config
COPY static static
RUN cargo build --release --locked && strip target/release/orrery

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/orrery orrery \
    && mkdir -p /var/lib/orrery && chown orrery /var/lib/orrery
COPY --from=build /src/target/release/orrery /usr/local/bin/orrery
USER orrery
WORKDIR /var/lib/orrery
ENV ORRERY__SERVER__BIND=0.0.0.0:4200
EXPOSE 4200
ENTRYPOINT ["/usr/local/bin/orrery"]
CMD ["serve"]
