// Why a host socket could not be set up (dialled or listening): the call that failed and its
// errno, for Go-style error lines ("dial tcp 10.0.0.1:80: connect:
// connection refused").
import { errnoText } from "../../ffi/libc.ts";
import { closeFd } from "../../ffi/sys.ts";

type DialStep = "socket" | "bind" | "connect" | "listen";

export class DialError {
  constructor(
    readonly step: DialStep,
    readonly errno: number,
  ) {}

  /** "connect: connection refused". */
  get text(): string {
    return `${this.step}: ${errnoText(this.errno)}`;
  }
}

/** Closes a socket whose setup failed and returns the failure. */
export function closeWith(fd: number, err: DialError): DialError {
  closeFd(fd);
  return err;
}
