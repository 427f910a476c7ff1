/* Sorting samples for medians (the bench guests). */
#include "guest.h"

/* Shell sort (Ciura gaps): no recursion, fast enough for a few thousand samples. */
void sort_u64(uint64_t *v, uint32_t n)
{
	static const uint32_t gaps[] = { 701, 301, 132, 57, 23, 10, 4, 1 };
	for (unsigned g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
		uint32_t gap = gaps[g];
		for (uint32_t i = gap; i < n; i++) {
			uint64_t t = v[i];
			uint32_t j = i;
			for (; j >= gap && v[j - gap] > t; j -= gap)
				v[j] = v[j - gap];
			v[j] = t;
		}
	}
}
