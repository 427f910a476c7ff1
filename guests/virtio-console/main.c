/*
 * virtio-console: a modern virtio-pci console (1af4:1043, virtio 1.2 §5.3)
 * without VIRTIO_CONSOLE_F_MULTIPORT, so port 0 is queues 0 (receiveq) and
 * 1 (transmitq). Features: VERSION_1 only. Posts a 64-byte receive buffer,
 * transmits "hello from hvc0\n" and waits (bounded) for the transmit to be
 * used, then waits about a second (bounded) for host input.
 *
 * Output under QEMU (the host side of the console gets "hello from hvc0\n"):
 *   virtio-console: found at 00:SS.F
 *   virtio-console: barN 0x... size 0x... ...   (one per BAR used)
 *   virtio-console: transmit ok (16 bytes)
 *   virtio-console: received N bytes "<text>"   (non-printable bytes as '.')
 *     | virtio-console: nothing received
 *   virtio-console: done
 */
#include "guest.h"
#include "virtio.h"

#define NAME "virtio-console"
#define VIRTIO_CONSOLE_PCI_ID (VIRTIO_PCI_MODERN_BASE + 3)
#define RX_QUEUE 0
#define TX_QUEUE 1
#define RX_BYTES 64
#define RX_SPINS 300000		/* ~1 s at a million instructions a second, a few per spin */
#define RX_SETTLE_SPINS 50000	/* after the first bytes, how long more may come */

static struct virtio_pci vp;
static struct virtq rxq, txq;
static struct virtq_mem rx_mem, tx_mem;
static const char hello[] = "hello from hvc0\n";
static char tx_buf[sizeof(hello)];
static char rx_buf[4][RX_BYTES];
static char text[4 * RX_BYTES + 1];

void guest_main(void)
{
	if (virtio_pci_open(&vp, NAME, VIRTIO_CONSOLE_PCI_ID) || virtio_negotiate(&vp, 0))
		return;
	if (virtq_setup(&vp, &rxq, &rx_mem, RX_QUEUE, 4, VIRTIO_MSI_NO_VECTOR) ||
	    virtq_setup(&vp, &txq, &tx_mem, TX_QUEUE, 4, VIRTIO_MSI_NO_VECTOR))
		return;
	virtio_driver_ok(&vp);

	/* receive buffers first, so host input has somewhere to go */
	for (uint16_t i = 0; i < 4; i++) {
		virtq_set_desc(&rxq, i, rx_buf[i], RX_BYTES, VIRTQ_DESC_F_WRITE, 0);
		virtq_post(&rxq, i);
	}
	virtq_kick(&rxq);

	memcpy(tx_buf, hello, sizeof(hello) - 1);
	virtq_set_desc(&txq, 0, tx_buf, sizeof(hello) - 1, 0, 0);
	virtq_post(&txq, 0);
	virtq_kick(&txq);
	uint32_t id, len;
	if (!virtq_wait_used(&txq, &id, &len, VIRTIO_USED_SPINS)) {
		printf(NAME ": FAIL transmit: no completion (device_status 0x%x)\n", virtio_status(&vp));
		return;
	}
	if (id != 0) {
		printf(NAME ": FAIL transmit: used id %u\n", id);
		return;
	}
	/* the used len of a device-readable buffer is what the device wrote into it: 0 */
	printf(NAME ": transmit ok (%u bytes)\n", (unsigned)(sizeof(hello) - 1));

	uint32_t total = 0, spins = RX_SPINS;
	for (uint32_t i = 0; i < spins; i++) {
		if (virtq_get_used(&rxq, &id, &len)) {
			if (id >= 4 || len > RX_BYTES) {
				printf(NAME ": FAIL receive: used id %u len %u\n", id, len);
				return;
			}
			for (uint32_t k = 0; k < len && total < sizeof(text) - 1; k++) {
				char c = rx_buf[id][k];
				text[total++] = (c >= 0x20 && c < 0x7f) ? c : '.';
			}
			spins = i + RX_SETTLE_SPINS < spins ? i + RX_SETTLE_SPINS : spins;
		}
		cpu_relax();
	}
	text[total] = 0;
	if (total)
		printf(NAME ": received %u bytes \"%s\"\n", total, text);
	else
		printf(NAME ": nothing received\n");
	virtio_reset(&vp);
	printf(NAME ": done\n");
}
