// A one-line progress bar on stderr for long runs; redrawn in place on a terminal, a line every
// tenth of the way otherwise (logs, CI).

const BAR_WIDTH = 30;
const NON_TTY_STEP = 0.1;

export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  const started = performance.now();
  let lastShare = -1;
  return (done, total) => {
    const share = total === 0 ? 1 : done / total;
    const seconds = (performance.now() - started) / 1000;
    const eta = share > 0 ? (seconds / share) * (1 - share) : 0;
    const text = `${label} [${'#'.repeat(Math.round(share * BAR_WIDTH)).padEnd(BAR_WIDTH)}] ${done}/${total} ${seconds.toFixed(0)}s${done < total ? `, ~${eta.toFixed(0)}s left` : ''}`;
    if (stream.isTTY) {
      stream.write(`\r${text}${done === total ? '\n' : ''}`);
    } else if (done === total || share - lastShare >= NON_TTY_STEP) {
      lastShare = share;
      stream.write(`${text}\n`);
    }
  };
}
