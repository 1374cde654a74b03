# Multi-stage build of the monasca-connect binary: a static binary in a
# distroless image, running as a non-root user, with the shipped pipelines.
#
#   docker build -t monasca-connect .
#   docker run --rm -e KAFKA_BROKERS=kafka:9092 monasca-connect
FROM golang:1.26 AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.Version=${VERSION} -X main.DateBuilt=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      -o /out/monasca-connect ./cmd/monasca-connect

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/monasca-connect /usr/local/bin/monasca-connect
COPY pipelines /etc/monasca-connect/pipelines
ENV AGGREGATION_SPECS=/etc/monasca-connect/pipelines/aggregation-specifications.yaml
USER nonroot:nonroot
EXPOSE 4195
ENTRYPOINT ["/usr/local/bin/monasca-connect"]
CMD ["run", "/etc/monasca-connect/pipelines/monasca-aggregation.yaml"]
