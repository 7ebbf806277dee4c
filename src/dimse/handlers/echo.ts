// C-ECHO (PS3.4 Annex A, PS3.7 §9.1.5): proves the association works. No audit row of
// its own: the association's row already says who connected; echoes are counted and
// logged when the association ends.

import type { Exchange } from '../exchange.js';
import { DimseStatus } from '../status.js';

export async function handleEcho(ex: Exchange): Promise<void> {
  ex.scope.echoed();
  await ex.final(ex.response(DimseStatus.Success));
}
