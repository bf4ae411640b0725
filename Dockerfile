# Static backup-ns binary in a scratch image. The tz database is compiled in (chrono-tz), and the in-cluster
# service-account CA is read from the mounted token volume, so the image needs no files besides the binary.
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin backup-ns

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/backup-ns /backup-ns
# CA bundle for an https:// Pushgateway (override with SSL_CERT_FILE for a private CA).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/backup-ns"]
