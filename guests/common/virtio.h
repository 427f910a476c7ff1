/*
 * A virtio 1.2 driver core for the test guests (common/virtio.c, in
 * libguest.a): the modern virtio-pci transport (spec §4.1) and split
 * virtqueues (§2.7) in identity-mapped .bss memory. No legacy interface.
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "guest.h"
#include "pci.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_MODERN_BASE 0x1040	/* device id = 0x1040 + virtio device id */

/* struct virtio_pci_cap (§4.1.4): vendor capability 0x09 */
#define VIRTIO_CAP_CFG_TYPE 3
#define VIRTIO_CAP_BAR 4
#define VIRTIO_CAP_OFFSET 8
#define VIRTIO_CAP_LENGTH 12
#define VIRTIO_CAP_NOTIFY_MULT 16
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* struct virtio_pci_common_cfg (§4.1.4.3) */
#define VIRTIO_COMMON_DFSELECT 0x00
#define VIRTIO_COMMON_DF 0x04
#define VIRTIO_COMMON_GFSELECT 0x08
#define VIRTIO_COMMON_GF 0x0c
#define VIRTIO_COMMON_MSIX 0x10
#define VIRTIO_COMMON_NUMQ 0x12
#define VIRTIO_COMMON_STATUS 0x14
#define VIRTIO_COMMON_CFGGENERATION 0x15
#define VIRTIO_COMMON_Q_SELECT 0x16
#define VIRTIO_COMMON_Q_SIZE 0x18
#define VIRTIO_COMMON_Q_MSIX 0x1a
#define VIRTIO_COMMON_Q_ENABLE 0x1c
#define VIRTIO_COMMON_Q_NOFF 0x1e
#define VIRTIO_COMMON_Q_DESCLO 0x20
#define VIRTIO_COMMON_Q_DESCHI 0x24
#define VIRTIO_COMMON_Q_AVAILLO 0x28
#define VIRTIO_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_COMMON_Q_USEDLO 0x30
#define VIRTIO_COMMON_Q_USEDHI 0x34
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* Device status (§2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* ISR status (§4.1.4.5) */
#define VIRTIO_ISR_QUEUE 0x1
#define VIRTIO_ISR_CONFIG 0x2

/* Reserved feature bits (§6) */
#define VIRTIO_RING_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_RING_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)

/* Split virtqueue (§2.7) */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1
#define VIRTQ_MAX_SIZE 32	/* the most this driver uses; smaller if the device offers less */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

/* Backing store of one queue: descriptor table (align 16), avail ring (align 2), used ring (align 4). */
struct virtq_mem {
	struct virtq_desc desc[VIRTQ_MAX_SIZE];
	uint16_t avail[2 + VIRTQ_MAX_SIZE + 1];	/* flags, idx, ring[size], used_event */
	uint8_t pad[4096 - 16 * VIRTQ_MAX_SIZE - 2 * (3 + VIRTQ_MAX_SIZE)];
	uint32_t used[1 + 2 * VIRTQ_MAX_SIZE + 1];	/* flags|idx, ring[size] {id, len}, avail_event */
} __attribute__((aligned(4096)));

struct virtq {
	uint16_t index, size;
	volatile struct virtq_desc *desc;
	volatile uint16_t *avail;	/* [0] flags, [1] idx, [2 + i] ring, [2 + size] used_event */
	volatile uint16_t *used;	/* [0] flags, [1] idx, then ring elements, then avail_event */
	uintptr_t notify;
	int event_idx;
	uint16_t avail_idx;		/* the driver's next avail.idx */
	uint16_t kicked_idx;		/* avail.idx at the last notification decision */
	uint16_t last_used;		/* used.idx consumed so far */
	uint32_t notifications, suppressed;
};

struct virtio_pci {
	const char *name;		/* prefix of every printed line */
	struct pci_func f;
	uintptr_t common, notify, isr, device;
	uint32_t notify_mult, notify_len, device_len;
	struct pci_msix msix;
	uint64_t offered, features;
};

/*
 * Finds vendor 0x1af4 device `device_id` on bus 0, prints "<name>: found at
 * 00:SS.F", reads the virtio capabilities, sets up the BARs they (and the
 * MSI-X table) point into (assigns, maps; one line per BAR: "<name>: barN
 * 0x... size 0x..."), and enables memory decode and bus mastering.
 * 0 ok, -1 with the reason printed.
 */
int virtio_pci_open(struct virtio_pci *vp, const char *name, uint16_t device_id);
/* Writes 0 to device_status and waits (bounded) until it reads 0. 0 ok, -1 timeout. */
int virtio_reset(struct virtio_pci *vp);
/*
 * reset, ACKNOWLEDGE, DRIVER, features: accepts offered & wanted (VERSION_1
 * required), FEATURES_OK and re-reads it. vp->offered / vp->features. 0 ok, -1 printed.
 */
int virtio_negotiate(struct virtio_pci *vp, uint64_t wanted);
/* Sets up queue `index` in `mem` with min(device max, VIRTQ_MAX_SIZE, want) entries, MSI-X `vector` (or NO_VECTOR); enables it. 0 ok, -1 printed. */
int virtq_setup(struct virtio_pci *vp, struct virtq *vq, struct virtq_mem *mem, uint16_t index, uint16_t want, uint16_t vector);
void virtio_driver_ok(struct virtio_pci *vp);
uint8_t virtio_status(struct virtio_pci *vp);
uint8_t virtio_read_isr(struct virtio_pci *vp);
/* Sets config_msix_vector and reads it back (the device answers NO_VECTOR when it cannot map it). */
uint16_t virtio_set_config_vector(struct virtio_pci *vp, uint16_t vector);

/* Device configuration reads, retried (bounded) until config_generation is stable around them. */
uint8_t virtio_config_read8(struct virtio_pci *vp, unsigned off);
uint16_t virtio_config_read16(struct virtio_pci *vp, unsigned off);
uint32_t virtio_config_read32(struct virtio_pci *vp, unsigned off);
uint64_t virtio_config_read64(struct virtio_pci *vp, unsigned off);

/* Descriptor `i` = {addr, len, flags, next}. */
static inline void virtq_set_desc(struct virtq *vq, uint16_t i, const volatile void *addr, uint32_t len, uint16_t flags, uint16_t next)
{
	vq->desc[i].addr = (uint64_t)(uintptr_t)addr;
	vq->desc[i].len = len;
	vq->desc[i].flags = flags;
	vq->desc[i].next = next;
}
/* Puts chain `head` in the next avail slot and publishes avail.idx (no notification). */
void virtq_post(struct virtq *vq, uint16_t head);
/* Notifies the device of what was posted since the last kick, unless the device suppressed it (EVENT_IDX or NO_NOTIFY). */
void virtq_kick(struct virtq *vq);
/* Asks for (on) or against (off) an interrupt on the next used buffer: used_event with EVENT_IDX, else avail.flags. */
void virtq_want_interrupt(struct virtq *vq, int on);
/* 1 and the next used element when one is there, else 0. */
int virtq_get_used(struct virtq *vq, uint32_t *id, uint32_t *len);
/* virtq_get_used, retried up to `spins` times. */
int virtq_wait_used(struct virtq *vq, uint32_t *id, uint32_t *len, uint32_t spins);
static inline uint16_t virtq_used_idx(struct virtq *vq) { return __atomic_load_n(&vq->used[1], __ATOMIC_ACQUIRE); }

static inline void virtio_mb(void) { __asm__ volatile("mfence" : : : "memory"); }

/* Bounds of the waits, in loop iterations (~1 million instructions per second under nested KVM). */
#define VIRTIO_RESET_SPINS 100000
#define VIRTIO_USED_SPINS 2000000	/* a request normally completes in well under 100k */

#endif
