# The reins binary (worker, CLI) in a minimal image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/reins ./cmd/reins

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/reins /usr/local/bin/reins
ENTRYPOINT ["/usr/local/bin/reins"]
