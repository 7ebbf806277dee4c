// C-ECHO (PS3.4 Annex A, PS3.7 §9.1.5): proves the association works; nothing else.

import type { Exchange } from '../exchange.js';
import { DimseStatus } from '../status.js';

export async function handleEcho(ex: Exchange): Promise<void> {
  await ex.final(ex.response(DimseStatus.Success));
}
