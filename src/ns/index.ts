// Getting a device (docs/architecture.md, src/ns/): attach as root, attach rootless
// through a helper under nsenter, run mode under unshare. main.ts imports
// from here only.
export { acquireDevice, type AcquireOptions, type TunAttachment } from "./acquire.ts";
export { startRunMode, forwardRunModeSignals, type RunModeOptions, type RunModeSession } from "./run-mode.ts";
export { runHiddenCommand } from "./helper.ts";
export { DeviceError, EXIT_DEVICE, EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE, type DeviceStep, type Cause } from "./errors.ts";
export { RUN_DEFAULTS, HIDDEN_COMMAND } from "./args.ts";
