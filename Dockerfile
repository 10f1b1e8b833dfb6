# CPU image serving the bundled demo model. For CUDA, build FROM an nvidia/cuda runtime image with
# Node 20 and set ONNXRUNTIME_NODE_INSTALL=cuda12, then run with --device cuda.
FROM node:20-bookworm-slim
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip HOST=0.0.0.0 PORT=8000
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npm ci --no-audit --no-fund
COPY config ./config
COPY models ./models
EXPOSE 8000
# node itself is PID 1 (exec form, no npm or shell in between): `docker stop` sends SIGTERM to PID 1
# only, and swserve drains on it; npm would exit and leave node without the signal.
CMD ["node", "dist/src/cli/main.js", "serve", "--model", "models/demo"]
