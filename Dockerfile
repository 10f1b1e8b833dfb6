# swserve images. Two targets:
#   cpu  (default)  docker build -t swserve .
#   cuda            docker build --target cuda -t swserve:cuda .   (run with --gpus all ... --device cuda)
# Node 22 LTS; production dependencies only; runs as the unprivileged `node` user with node itself as
# PID 1 (exec form, no npm wrapper), so SIGTERM reaches the server and in-flight requests drain.
# The Hugging Face cache lives on the volume /data/huggingface (HF_HOME): mount it to keep models.

ARG NODE_IMAGE=node:22-bookworm-slim

# Compiles the TypeScript (dev dependencies live only in this stage).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# Production dependencies; onnxruntime-node's CPU binaries ship inside its npm package.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# The same, plus onnxruntime-node's CUDA 12 provider libraries from NuGet, through swserve's postinstall
# (tools/install-onnxruntime.mjs: package.json's allowScripts keeps npm from running onnxruntime-node's own).
FROM deps AS deps-cuda
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY tools/install-onnxruntime.mjs ./tools/
RUN node tools/install-onnxruntime.mjs

# What both images serve: the compiled server, its static live page, configuration and the demo model.
FROM ${NODE_IMAGE} AS app
WORKDIR /app
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY src/telemetry/live-page ./src/telemetry/live-page
COPY config ./config
COPY models ./models

# CUDA 12 with cuDNN 9 (what onnxruntime 1.30's CUDA provider links against), Node copied from the
# official image; libvulkan1 and the graphics capability let --device webgpu reach the GPU as well.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS cuda
RUN apt-get update \
  && apt-get install -y --no-install-recommends libvulkan1 ca-certificates \
  && rm -rf /var/lib/apt/lists/* \
  && (userdel -r ubuntu || true) \
  && groupadd --gid 1000 node && useradd --uid 1000 --gid node --create-home node
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8000 HF_HOME=/data/huggingface NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
COPY --from=deps-cuda /app/node_modules ./node_modules
COPY --from=app /app ./
RUN mkdir -p /data/huggingface && chown node:node /data/huggingface
USER node
VOLUME /data/huggingface
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve", "--model", "models/demo", "--device", "cuda"]


# The CPU image; last, so it is what `docker build` makes when no --target is named.
FROM ${NODE_IMAGE} AS cpu
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8000 HF_HOME=/data/huggingface
COPY --from=deps /app/node_modules ./node_modules
COPY --from=app /app ./
RUN mkdir -p /data/huggingface && chown node:node /data/huggingface
USER node
VOLUME /data/huggingface
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve", "--model", "models/demo"]
