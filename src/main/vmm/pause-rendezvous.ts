// The meeting point of a pause: the machine asks every vCPU to stop outside
// KVM_RUN, each vCPU's driver arrives here and waits for the release, and the
// pause completes when the last one has arrived.

export class PauseRendezvous {
  private arrived = 0;
  private allArrived!: () => void;
  private releaseGate!: () => void;
  /** Resolves when every vCPU expected has arrived. */
  readonly complete: Promise<void>;
  /** Resolves on release(). */
  private readonly gate: Promise<void>;

  constructor(private readonly expected: number) {
    this.complete = new Promise<void>((resolve) => { this.allArrived = resolve; });
    this.gate = new Promise<void>((resolve) => { this.releaseGate = resolve; });
    if (expected === 0) this.allArrived();
  }

  /** A vCPU has paused (or will never run again); resolves when the pause is released. */
  arrive(): Promise<void> {
    if (++this.arrived === this.expected) this.allArrived();
    return this.gate;
  }

  release(): void {
    this.allArrived(); // a pause cut short by the VM ending completes too
    this.releaseGate();
  }
}
