// A one-line progress bar on stderr for long runs; redrawn in place on a terminal, a line every
// tenth of the way otherwise (logs, CI).

const BAR_WIDTH = 30;
const NON_TTY_STEP = 0.1;
// A download reports every network chunk; a terminal redraw ten times a second is enough to read.
const TTY_REDRAW_MS = 100;

export function progressBar(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
  format: (count: number) => string = String,
): (done: number, total: number) => void {
  const started = performance.now();
  let lastShare = -1;
  let lastDraw = -Infinity;
  return (done, total) => {
    const share = total === 0 ? 1 : done / total;
    const seconds = (performance.now() - started) / 1000;
    const eta = share > 0 ? (seconds / share) * (1 - share) : 0;
    const text = `${label} [${'#'.repeat(Math.round(share * BAR_WIDTH)).padEnd(BAR_WIDTH)}] ${format(done)}/${format(total)} ${seconds.toFixed(0)}s${done < total ? `, ~${eta.toFixed(0)}s left` : ''}`;
    if (stream.isTTY) {
      if (done < total && performance.now() - lastDraw < TTY_REDRAW_MS) return;
      lastDraw = performance.now();
      stream.write(`\r${text}${done === total ? '\n' : ''}`);
    } else if (done === total || share - lastShare >= NON_TTY_STEP) {
      lastShare = share;
      stream.write(`${text}\n`);
    }
  };
}
