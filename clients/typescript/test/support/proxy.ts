// A tiny TCP proxy between the client and rtchat, to break the network on purpose:
// cut() drops every open connection, setDown(true) refuses new ones (connections are
// accepted and closed at once, like a dead route), setSilent(true) keeps connections open
// but forwards nothing (a cable pulled without anyone noticing), and dropResponses makes
// requests reach the server while their answers never come back.
import { createServer, connect, type Server, type Socket } from "node:net";

export class ChaosProxy {
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private down = false;
  private silent = false;
  /** Answers are dropped (and their connections cut) while this is true. */
  dropResponses = false;
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(private readonly targetPort: () => number) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(targetPort: () => number): Promise<ChaosProxy> {
    const proxy = new ChaosProxy(targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }

  private accept(client: Socket): void {
    this.accepted++;
    if (this.down) {
      client.destroy();
      return;
    }
    const upstream = connect(this.targetPort(), "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on("data", (chunk) => {
      if (!this.silent) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (this.dropResponses) end();
      else if (!this.silent) client.write(chunk);
    });
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  }

  /** Drops every open connection (both ways). */
  cut(): number {
    const n = this.pairs.size;
    for (const [a, b] of [...this.pairs]) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
    return n;
  }

  setDown(down: boolean): void {
    this.down = down;
    if (down) this.cut();
  }

  setSilent(silent: boolean): void {
    this.silent = silent;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
