# CPU image serving the bundled demo model. For CUDA, build FROM an nvidia/cuda runtime image with
# Node 20 and set ONNXRUNTIME_NODE_INSTALL=cuda12, then run with --device cuda.
FROM node:20-bookworm-slim
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip HOST=0.0.0.0 PORT=8000
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY tools/install-onnxruntime.mjs ./tools/
RUN npm ci --no-audit --no-fund
COPY config ./config
COPY models ./models
EXPOSE 8000
CMD ["npm", "start"]
