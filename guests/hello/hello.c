/* hello: the smallest guest; proves the entry, long mode and COM1 output. */
#include "guest.h"

void guest_main(void)
{
	printf("hello: long mode ok\n");
}
