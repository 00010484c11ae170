// The error summary printed in "done" and "error" lines
// (docs/compatibility.md, Error summary):
//
//   l=LR/LW r=RR/RW
//
// LR/LW are the errors reading/writing the local side, RR/RW the remote
// side; "0" when there was none. The field that came first is bracketed:
// the copy loop that stopped first (local->remote reads LR and writes RW;
// remote->local reads RR and writes LW) names it, its read error winning
// over its write error; with no error at all, LR is bracketed.
//
// "Local" is the side that started the flow: the guest for routed and -R
// flows, the host client for -L.

export type Loop = "l2r" | "r2l";

export class SpliceErrors {
  lr = "0";
  lw = "0";
  rr = "0";
  rw = "0";
  private first: Loop | null = null;

  /** The loop that reads the local side stopped (read or write error). */
  stopL2R(readErr: string | null, writeErr: string | null): void {
    if (readErr !== null && this.lr === "0") this.lr = readErr;
    if (writeErr !== null && this.rw === "0") this.rw = writeErr;
    if (this.first === null) this.first = "l2r";
  }

  /** The loop that reads the remote side stopped. */
  stopR2L(readErr: string | null, writeErr: string | null): void {
    if (readErr !== null && this.rr === "0") this.rr = readErr;
    if (writeErr !== null && this.lw === "0") this.lw = writeErr;
    if (this.first === null) this.first = "r2l";
  }

  format(): string {
    let mark: "lr" | "lw" | "rr" | "rw" = "lr";
    if (this.first === "l2r") mark = this.lr !== "0" ? "lr" : this.rw !== "0" ? "rw" : "lr";
    else if (this.first === "r2l") mark = this.rr !== "0" ? "rr" : this.lw !== "0" ? "lw" : "lr";
    return `l=${this.field("lr", mark)}/${this.field("lw", mark)} r=${this.field("rr", mark)}/${this.field("rw", mark)}`;
  }

  private field(k: "lr" | "lw" | "rr" | "rw", mark: "lr" | "lw" | "rr" | "rw"): string {
    return k === mark ? `[${this[k]}]` : this[k];
  }
}
