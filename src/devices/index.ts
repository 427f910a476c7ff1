// The device models and buses, for the VMM's builder to import in one place.
export * from './bus-device';
export * from './bus';
export * from './width-adapter';
export * from './no-device';
export * from './serial';
export * from './cmos';
export * from './i8042';
export * from './pit';
export * from './ioapic';
