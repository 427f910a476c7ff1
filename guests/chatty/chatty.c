/*
 * chatty: prints numbered lines on COM1 for ever, to test what the VMM does
 * when nobody reads its output any more (a `| head -1` reader that went away).
 *
 *   chatty: line 0
 *   chatty: line 1
 *   ...
 *
 * It never resets by itself: the VMM must end it.
 */
#include "guest.h"

void guest_main(void)
{
	for (unsigned long line = 0;; line++)
		printf("chatty: line %lu\n", line);
}
