// A client of the JSON API socket (-api-socket, slirp4netns's --api-socket)
// as slirp4netns's own clients talk to it: one request on its own
// connection, the sending side shut down (shutdown(SHUT_WR)), then the
// reply read until the server closes.

/** Sends `request` (an object as JSON, or raw bytes) and returns the reply as text (latin1 for raw bytes, so any byte survives). */
export async function apiRequest(path: string, request: object | Uint8Array): Promise<string> {
  const raw = request instanceof Uint8Array;
  const chunks: Buffer[] = [];
  const { promise, resolve } = Promise.withResolvers<string>();
  const done = () => resolve(Buffer.concat(chunks).toString(raw ? "latin1" : "utf8"));
  await Bun.connect({
    unix: path,
    socket: {
      open(s) {
        s.write(raw ? request : JSON.stringify(request));
        s.shutdown();
      },
      data(_s, d) {
        chunks.push(Buffer.from(d));
      },
      close: done,
      error: done,
    },
  });
  return promise;
}
