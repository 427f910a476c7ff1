/*
 * The modern virtio-pci transport and split virtqueues for the test guests
 * (see virtio.h). Written to the virtio 1.2 specification, not to any VMM.
 */
#include "virtio.h"

#define CONFIG_GENERATION_TRIES 16

struct cap_found {
	unsigned bar;
	uint32_t offset, length, mult;
	int present;
};

static int setup_bar(struct virtio_pci *vp, unsigned bar, uint64_t *addrs, uint8_t *done)
{
	if (done[bar])
		return 0;
	struct pci_bar b;
	int assigned, mapped;
	if (pci_bar_setup(vp->name, vp->f, bar, &b, &assigned, &mapped))
		return -1;
	printf("%s: bar%u 0x%lx size 0x%lx%s%s%s\n", vp->name, bar, b.addr, b.size, b.is64 ? " 64-bit" : " 32-bit",
	       assigned ? " assigned" : "", mapped ? " mapped above 4 GiB" : "");
	addrs[bar] = b.addr;
	done[bar] = 1;
	return 0;
}

int virtio_pci_open(struct virtio_pci *vp, const char *name, uint16_t device_id)
{
	memset(vp, 0, sizeof(*vp));
	vp->name = name;
	if (!pci_find(VIRTIO_PCI_VENDOR, device_id, &vp->f)) {
		printf("%s: no device %04x:%04x on bus 0\n", name, VIRTIO_PCI_VENDOR, device_id);
		return -1;
	}
	printf("%s: found at 00:%02x.%u\n", name, vp->f.slot, vp->f.fn);

	struct cap_found caps[VIRTIO_PCI_CAP_DEVICE_CFG + 1];
	memset(caps, 0, sizeof(caps));
	for (unsigned p = pci_find_cap(vp->f, PCI_CAP_ID_VENDOR, 0); p; p = pci_find_cap(vp->f, PCI_CAP_ID_VENDOR, p)) {
		uint8_t type = pci_read8(vp->f, p + VIRTIO_CAP_CFG_TYPE);
		uint8_t bar = pci_read8(vp->f, p + VIRTIO_CAP_BAR);
		/* the first of each type is the one to use (§4.1.4); bar > 5 is reserved: skip it */
		if (type < 1 || type > VIRTIO_PCI_CAP_DEVICE_CFG || caps[type].present || bar >= PCI_BARS)
			continue;
		caps[type].present = 1;
		caps[type].bar = bar;
		caps[type].offset = pci_read32(vp->f, p + VIRTIO_CAP_OFFSET);
		caps[type].length = pci_read32(vp->f, p + VIRTIO_CAP_LENGTH);
		if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
			caps[type].mult = pci_read32(vp->f, p + VIRTIO_CAP_NOTIFY_MULT);
	}
	for (unsigned t = VIRTIO_PCI_CAP_COMMON_CFG; t <= VIRTIO_PCI_CAP_ISR_CFG; t++) {
		if (!caps[t].present) {
			printf("%s: no virtio capability of cfg_type %u\n", name, t);
			return -1;
		}
	}

	uint64_t addrs[PCI_BARS];
	uint8_t done[PCI_BARS];
	memset(done, 0, sizeof(done));
	for (unsigned t = 1; t <= VIRTIO_PCI_CAP_DEVICE_CFG; t++)
		if (caps[t].present && setup_bar(vp, caps[t].bar, addrs, done))
			return -1;
	if (pci_msix_find(vp->f, &vp->msix) == 0) {
		if (setup_bar(vp, vp->msix.table_bar, addrs, done))
			return -1;
		vp->msix.table = (uintptr_t)(addrs[vp->msix.table_bar] + vp->msix.table_offset);
	}

	vp->common = (uintptr_t)(addrs[caps[1].bar] + caps[1].offset);
	vp->notify = (uintptr_t)(addrs[caps[2].bar] + caps[2].offset);
	vp->notify_mult = caps[2].mult;
	vp->notify_len = caps[2].length;
	vp->isr = (uintptr_t)(addrs[caps[3].bar] + caps[3].offset);
	if (caps[4].present) {
		vp->device = (uintptr_t)(addrs[caps[4].bar] + caps[4].offset);
		vp->device_len = caps[4].length;
	}
	uint16_t command = pci_read16(vp->f, PCI_COMMAND);
	pci_write16(vp->f, PCI_COMMAND, command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	return 0;
}

uint8_t virtio_status(struct virtio_pci *vp) { return mmio_read8(vp->common + VIRTIO_COMMON_STATUS); }
uint8_t virtio_read_isr(struct virtio_pci *vp) { return mmio_read8(vp->isr); }

static void set_status(struct virtio_pci *vp, uint8_t bits)
{
	mmio_write8(vp->common + VIRTIO_COMMON_STATUS, virtio_status(vp) | bits);
}

int virtio_reset(struct virtio_pci *vp)
{
	mmio_write8(vp->common + VIRTIO_COMMON_STATUS, 0);
	for (int i = 0; i < VIRTIO_RESET_SPINS; i++)
		if (virtio_status(vp) == 0)
			return 0;
	printf("%s: device_status still 0x%x after reset\n", vp->name, virtio_status(vp));
	return -1;
}

int virtio_negotiate(struct virtio_pci *vp, uint64_t wanted)
{
	if (virtio_reset(vp))
		return -1;
	set_status(vp, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(vp, VIRTIO_STATUS_DRIVER);
	uint64_t offered = 0;
	for (uint32_t sel = 0; sel < 2; sel++) {
		mmio_write32(vp->common + VIRTIO_COMMON_DFSELECT, sel);
		offered |= (uint64_t)mmio_read32(vp->common + VIRTIO_COMMON_DF) << (32 * sel);
	}
	vp->offered = offered;
	if (!(offered & VIRTIO_F_VERSION_1)) {
		printf("%s: device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)\n", vp->name, offered);
		set_status(vp, VIRTIO_STATUS_FAILED);
		return -1;
	}
	vp->features = offered & (wanted | VIRTIO_F_VERSION_1);
	for (uint32_t sel = 0; sel < 2; sel++) {
		mmio_write32(vp->common + VIRTIO_COMMON_GFSELECT, sel);
		mmio_write32(vp->common + VIRTIO_COMMON_GF, (uint32_t)(vp->features >> (32 * sel)));
	}
	set_status(vp, VIRTIO_STATUS_FEATURES_OK);
	if (!(virtio_status(vp) & VIRTIO_STATUS_FEATURES_OK)) {
		printf("%s: device refused features 0x%lx\n", vp->name, vp->features);
		set_status(vp, VIRTIO_STATUS_FAILED);
		return -1;
	}
	return 0;
}

static void write64(uintptr_t lo, uint64_t v)
{
	mmio_write32(lo, (uint32_t)v);
	mmio_write32(lo + 4, (uint32_t)(v >> 32));
}

int virtq_setup(struct virtio_pci *vp, struct virtq *vq, struct virtq_mem *mem, uint16_t index, uint16_t want, uint16_t vector)
{
	memset(vq, 0, sizeof(*vq));
	memset(mem, 0, sizeof(*mem));
	mmio_write16(vp->common + VIRTIO_COMMON_Q_SELECT, index);
	uint16_t max = mmio_read16(vp->common + VIRTIO_COMMON_Q_SIZE);
	if (max == 0) {
		printf("%s: queue %u is not available\n", vp->name, index);
		return -1;
	}
	uint16_t size = VIRTQ_MAX_SIZE;
	while (size > want || size > max)
		size >>= 1;	/* a power of 2 no larger than either (split queues need not use the device's maximum) */
	if (size == 0)
		return -1;
	vq->index = index;
	vq->size = size;
	vq->desc = mem->desc;
	vq->avail = mem->avail;
	vq->used = (volatile uint16_t *)mem->used;
	vq->event_idx = (vp->features & VIRTIO_RING_F_EVENT_IDX) != 0;
	mmio_write16(vp->common + VIRTIO_COMMON_Q_SIZE, size);
	write64(vp->common + VIRTIO_COMMON_Q_DESCLO, (uintptr_t)mem->desc);
	write64(vp->common + VIRTIO_COMMON_Q_AVAILLO, (uintptr_t)mem->avail);
	write64(vp->common + VIRTIO_COMMON_Q_USEDLO, (uintptr_t)mem->used);
	mmio_write16(vp->common + VIRTIO_COMMON_Q_MSIX, vector);
	uint16_t got = mmio_read16(vp->common + VIRTIO_COMMON_Q_MSIX);
	if (got != vector) {
		printf("%s: queue %u msix vector %u reads back as %u\n", vp->name, index, vector, got);
		return -1;
	}
	uint16_t off = mmio_read16(vp->common + VIRTIO_COMMON_Q_NOFF);
	uint32_t at = (uint32_t)off * vp->notify_mult;
	if (at + 2 > vp->notify_len) {
		printf("%s: queue %u notify offset 0x%x is outside the notify region (0x%x bytes)\n", vp->name, index, at, vp->notify_len);
		return -1;
	}
	vq->notify = vp->notify + at;
	mmio_write16(vp->common + VIRTIO_COMMON_Q_ENABLE, 1);
	return 0;
}

void virtio_driver_ok(struct virtio_pci *vp) { set_status(vp, VIRTIO_STATUS_DRIVER_OK); }

uint16_t virtio_set_config_vector(struct virtio_pci *vp, uint16_t vector)
{
	mmio_write16(vp->common + VIRTIO_COMMON_MSIX, vector);
	return mmio_read16(vp->common + VIRTIO_COMMON_MSIX);
}

#define CONFIG_READ(bits, expr) \
	uint##bits##_t v = 0; \
	for (int i = 0; i < CONFIG_GENERATION_TRIES; i++) { \
		uint8_t g = mmio_read8(vp->common + VIRTIO_COMMON_CFGGENERATION); \
		v = (expr); \
		if (mmio_read8(vp->common + VIRTIO_COMMON_CFGGENERATION) == g) \
			break; \
	} \
	return v;

uint8_t virtio_config_read8(struct virtio_pci *vp, unsigned off) { CONFIG_READ(8, mmio_read8(vp->device + off)) }
uint16_t virtio_config_read16(struct virtio_pci *vp, unsigned off) { CONFIG_READ(16, mmio_read16(vp->device + off)) }
uint32_t virtio_config_read32(struct virtio_pci *vp, unsigned off) { CONFIG_READ(32, mmio_read32(vp->device + off)) }
/* 64-bit fields as two 32-bit reads (§4.1.3.1), inside one generation */
uint64_t virtio_config_read64(struct virtio_pci *vp, unsigned off)
{
	CONFIG_READ(64, mmio_read32(vp->device + off) | (uint64_t)mmio_read32(vp->device + off + 4) << 32)
}

/* ---- Split virtqueue ---- */
static volatile uint16_t *used_event(struct virtq *vq) { return &vq->avail[2 + vq->size]; }
static volatile uint16_t *avail_event(struct virtq *vq) { return &vq->used[2 + 4 * vq->size]; }

void virtq_post(struct virtq *vq, uint16_t head)
{
	vq->avail[2 + (vq->avail_idx & (vq->size - 1))] = head;
	vq->avail_idx++;
	__atomic_store_n(&vq->avail[1], vq->avail_idx, __ATOMIC_RELEASE);	/* ring entry before idx */
}

/* §2.7.10: vring_need_event */
static int need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

void virtq_kick(struct virtq *vq)
{
	virtio_mb();	/* avail.idx visible before reading the device's suppression state */
	uint16_t old = vq->kicked_idx, now = vq->avail_idx;
	vq->kicked_idx = now;
	int notify = vq->event_idx ? need_event(*avail_event(vq), now, old) : !(vq->used[0] & VIRTQ_USED_F_NO_NOTIFY);
	if (!notify) {
		vq->suppressed++;
		return;
	}
	vq->notifications++;
	mmio_write16(vq->notify, vq->index);
}

void virtq_want_interrupt(struct virtq *vq, int on)
{
	if (vq->event_idx)
		*used_event(vq) = on ? vq->last_used : (uint16_t)(vq->last_used - 1);
	else
		vq->avail[0] = on ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT;
	virtio_mb();
}

int virtq_get_used(struct virtq *vq, uint32_t *id, uint32_t *len)
{
	if (virtq_used_idx(vq) == vq->last_used)
		return 0;
	volatile uint32_t *elem = (volatile uint32_t *)&vq->used[2 + 4 * (vq->last_used & (vq->size - 1))];
	*id = elem[0];
	*len = elem[1];
	vq->last_used++;
	return 1;
}

int virtq_wait_used(struct virtq *vq, uint32_t *id, uint32_t *len, uint32_t spins)
{
	for (uint32_t i = 0; i < spins; i++) {
		if (virtq_get_used(vq, id, len))
			return 1;
		cpu_relax();
	}
	return 0;
}
